from lab.core.passive import PassiveHealth, PassiveSettings


def test_nginx_max_fails_within_fail_timeout():
    p = PassiveHealth(PassiveSettings(max_fails=3, fail_timeout=10), ["a", "b"])
    assert p.failure("a", 0) is None and p.failure("a", 5) is None
    assert p.failure("a", 11) is None  # the failure at 0 s is older than 10 s
    e = p.failure("a", 12)
    assert e.server == "a" and e.until == 22 and "3 failures within 10 s" in e.rule
    assert p.ejected("a") and p.expire(21.9) == [] and p.expire(22) == ["a"] and not p.ejected("a")


def test_nginx_default_one_failure_is_enough():
    p = PassiveHealth(PassiveSettings(max_fails=1), ["a"])
    assert p.failure("a", 3).until == 13


def test_envoy_consecutive_errors_with_growing_ejection():
    p = PassiveHealth(PassiveSettings(consecutive_errors=5, base_ejection=30), [f"h{i}" for i in range(10)])
    for t in range(4):
        assert p.failure("h0", t) is None
    p.success("h0", 4)  # a success breaks the streak
    for t in range(5, 9):
        assert p.failure("h0", t) is None
    assert p.failure("h0", 9).until == 39
    p.expire(39)
    for t in range(40, 44):
        p.failure("h0", t)
    assert p.failure("h0", 44).until == 44 + 60  # second ejection lasts twice as long


def test_max_ejection_percent_keeps_the_pool_alive():
    p = PassiveHealth(PassiveSettings(consecutive_errors=1, max_ejection_percent=10), ["a", "b", "c"])
    assert p.failure("a", 0) is not None  # the first is always allowed
    assert p.failure("b", 0) is None  # 33% already ejected >= 10%


def test_off_by_default():
    p = PassiveHealth(PassiveSettings(), ["a"])
    assert not p.settings.enabled
    assert all(p.failure("a", t) is None for t in range(100))
