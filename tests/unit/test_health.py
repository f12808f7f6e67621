"""HAProxy health-counter semantics, with exact sequences and a fake clock."""
import pytest

from lab.core.health import DOWN, FAIL, PASS, UP, HealthCounter, HealthSettings, IllegalTransition, diagram


def run(counter, results, t0=0.0):
    """Feed results one per second; return (label after each, transitions)."""
    labels, transitions = [], []
    for i, r in enumerate(results):
        tr = counter.observe(PASS if r == "+" else FAIL, t0 + i)
        labels.append(counter.label())
        if tr:
            transitions.append((tr.before, tr.after, tr.at))
    return labels, transitions


def test_starts_up_but_one_failure_away_from_down_like_haproxy():
    c = HealthCounter("o1", HealthSettings(rise=2, fall=3))
    assert c.label() == "UP 1/3"
    labels, trans = run(c, "-")
    assert labels == ["DOWN 0/2"] and trans == [(UP, DOWN, 0.0)]


def test_fully_up_server_needs_fall_consecutive_failures():
    c = HealthCounter("o1", HealthSettings(rise=2, fall=3))
    labels, trans = run(c, "+---")
    assert labels == ["UP 3/3", "UP 2/3", "UP 1/3", "DOWN 0/2"]
    assert trans == [(UP, DOWN, 3.0)]


def test_one_success_heals_an_up_server_fully():
    c = HealthCounter("o1", HealthSettings(rise=2, fall=3))
    labels, trans = run(c, "+--+--")
    assert labels == ["UP 3/3", "UP 2/3", "UP 1/3", "UP 3/3", "UP 2/3", "UP 1/3"]
    assert trans == []


def test_down_server_needs_rise_consecutive_passes_and_any_failure_resets():
    c = HealthCounter("o1", HealthSettings(rise=3, fall=2), start_up=False)
    labels, trans = run(c, "++-+++")
    assert labels == ["DOWN 1/3", "DOWN 2/3", "DOWN 0/3", "DOWN 1/3", "DOWN 2/3", "UP 2/2"]
    assert trans == [(DOWN, UP, 5.0)]


def test_rise_one_fall_one_flips_on_every_change():
    c = HealthCounter("o1", HealthSettings(rise=1, fall=1))
    labels, trans = run(c, "+-+-")
    assert labels == ["UP 1/1", "DOWN 0/1", "UP 1/1", "DOWN 0/1"]
    assert len(trans) == 3


@pytest.mark.parametrize("rise,fall", [(1, 1), (2, 3), (3, 2), (5, 5)])
def test_health_stays_in_range_and_up_iff_at_least_rise(rise, fall):
    import random

    rng = random.Random(rise * 31 + fall)
    c = HealthCounter("o", HealthSettings(rise=rise, fall=fall))
    for i in range(2000):
        c.observe(PASS if rng.random() < 0.5 else FAIL, float(i))
        assert 0 <= c.health <= rise + fall - 1
        assert c.up == (c.health >= rise)


def test_intervals_fast_while_changing_and_down_while_down():
    s = HealthSettings(rise=2, fall=3, inter=2.0, fastinter=0.5, downinter=5.0)
    c = HealthCounter("o1", s)
    c.observe(PASS, 0)
    assert c.next_interval() == 2.0  # settled UP
    c.observe(FAIL, 1)
    assert c.next_interval() == 0.5  # UP 2/3: look again soon
    c.observe(FAIL, 2), c.observe(FAIL, 3)
    assert c.label() == "DOWN 0/2" and c.next_interval() == 5.0
    c.observe(PASS, 4)
    assert c.next_interval() == 0.5  # DOWN 1/2: rising


def test_defaults_follow_haproxy():
    s = HealthSettings()
    assert (s.inter, s.rise, s.fall, s.check_timeout) == (2.0, 2, 3, 2.0)


def test_worst_detection_counts_every_probe_timeout():
    # inter + fall x timeout + (fall - 1) x fastinter: 0.5 + 3 x 0.4 + 2 x 0.5
    assert HealthSettings(rise=2, fall=3, inter=0.5, timeout=0.4).worst_detection() == pytest.approx(2.7)
    assert HealthSettings(rise=2, fall=3, inter=2.0, fastinter=0.5, timeout=0.4).worst_detection() == pytest.approx(4.2)


def test_illegal_state_names_state_and_event():
    c = HealthCounter("o1")
    with pytest.raises(IllegalTransition, match=r"o1.*'UP'.*'maybe'"):
        c.observe("maybe", 0)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="rise and fall"):
        HealthSettings(rise=0)
    with pytest.raises(ValueError, match="inter"):
        HealthSettings(inter=0)


def test_force_and_diagram():
    c = HealthCounter("o1")
    tr = c.force(DOWN, 5.0, "operator")
    assert tr.after == DOWN and c.label() == "DOWN 0/2"
    assert c.force(DOWN, 6.0, "again") is None
    text = diagram()
    assert text.count("->") == 5 and "UP     fail" in text  # header + one line per transition
