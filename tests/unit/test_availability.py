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
    assert rows[0] == ("99.00%", "2.00", "3.65 d", "7.31 h")
    assert rows[1] == ("99.90%", "3.00", "8.77 h", "43.8 min")
    assert rows[2] == ("99.99%", "4.00", "52.6 min", "4.38 min")
    assert rows[3] == ("99.999%", "5.00", "5.26 min", "26.3 s")


def test_nines_command_does_the_arithmetic_and_refuses_non_availabilities(capsys):
    from lab.cli import main

    assert main(["nines", "--series", "0.999", "0.999", "0.99"]) == 0
    assert "= 98.80%" in capsys.readouterr().out
    assert main(["nines", "--parallel", "0.99", "0.99"]) == 0
    out = capsys.readouterr().out
    assert "= 99.99%" in out and "52.6 min" in out
    assert main(["nines", "--mtbf", "720", "--mttr", "4"]) == 0
    assert "99.45%" in capsys.readouterr().out
    assert main(["nines", "1.5"]) == 2 and "not an availability" in capsys.readouterr().err
    assert main(["nines", "--series", "0.9"]) == 2 and "two or more" in capsys.readouterr().err
    assert main(["nines", "--mtbf", "5"]) == 2 and "both --mtbf and --mttr" in capsys.readouterr().err
    assert main(["nines", "0.9", "--mtbf", "5", "--mttr", "1"]) == 2 and "without other values" in capsys.readouterr().err


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
