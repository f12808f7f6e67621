import math

import pytest

from lab.core import availability as av


def test_nines():
    assert av.nines(0.999) == pytest.approx(3)
    assert av.nines(0.9) == pytest.approx(1)
    assert math.isinf(av.nines(1.0))
    with pytest.raises(ValueError):
        av.nines(1.5)


def test_downtime_table_matches_the_usual_figures():
    rows = av.nines_table()
    assert rows[0] == ("99.00%", "3.65 d", "7.31 h")
    assert rows[1] == ("99.90%", "8.77 h", "43.8 min")
    assert rows[2] == ("99.99%", "52.6 min", "4.38 min")
    assert rows[3] == ("99.999%", "5.26 min", "26.3 s")


def test_series_is_weaker_and_parallel_stronger():
    assert av.series([0.99, 0.99]) == pytest.approx(0.9801)
    assert av.parallel([0.99, 0.99]) == pytest.approx(0.9999)
    assert av.parallel([0.9, 0.9, 0.9]) == pytest.approx(0.999)


def test_mtbf_mttr():
    assert av.from_mtbf(999, 1) == pytest.approx(0.999)
    with pytest.raises(ValueError):
        av.availability(0, 0)
    with pytest.raises(ValueError):
        av.availability(-1, 1)


def test_formatting():
    assert av.format_percent(1.0) == "100%"
    assert av.format_percent(0.5) == "50.00%"
    assert av.format_nines(1.0).startswith("∞")
    assert av.format_duration(0.25) == "250 ms"
