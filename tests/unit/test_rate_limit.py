"""The per-client rate limit counts as nginx's limit_req does: a steady client passes, a flood is refused, idle ones are forgotten."""
import pytest

from lab.core.rate_limit import RateLimit


def passed(limit, key, times):
    return [limit.allow(key, t) for t in times]


def test_a_client_at_the_rate_always_passes_and_one_twice_as_fast_gets_half():
    limit = RateLimit(rate=10)
    assert all(passed(limit, "a", [i * 0.1 for i in range(100)]))  # 10 a second, evenly
    assert sum(passed(limit, "b", [i * 0.05 for i in range(200)])) == 100  # 20 a second: every other one refused


def test_burst_lets_that_many_more_through_at_once_then_the_rate_rules():
    limit = RateLimit(rate=10, burst=5)
    assert passed(limit, "a", [0.0] * 8) == [True] * 6 + [False] * 2  # the first, and five more
    assert passed(limit, "a", [0.05, 0.1]) == [False, True]  # 0.1 s drains one request's worth
    assert limit.refused == 3


def test_nginx_numbers_one_request_free_then_none_closer_than_one_over_the_rate():
    # nginx, rate=10r/s burst=0: a request 100 ms after the last passes, 50 ms after is refused (excess 500 > 0)
    limit = RateLimit(rate=10)
    assert passed(limit, "a", [0.0, 0.05, 0.1, 0.15, 0.2]) == [True, False, True, False, True]


def test_a_refused_request_does_not_count_against_the_client():
    limit = RateLimit(rate=1)
    assert passed(limit, "a", [0.0, 0.1, 0.2, 0.3, 1.0]) == [True, False, False, False, True]


def test_clients_are_counted_apart():
    limit = RateLimit(rate=1)
    assert passed(limit, "a", [0.0, 0.0]) == [True, False] and limit.allow("b", 0.0)


def test_retry_after_says_when_the_client_may_send_again_in_whole_seconds():
    limit = RateLimit(rate=0.5, burst=1)
    passed(limit, "a", [0.0, 0.0])
    assert not limit.allow("a", 0.0) and limit.retry_after("a", 0.0) == 2  # one request's worth drains in 2 s
    assert limit.allow("a", 2.0)
    assert RateLimit(rate=100).retry_after("new", 0.0) == 1  # never 0: a 429 always asks for a pause


def test_the_table_keeps_at_most_max_clients_dropping_the_stalest():
    limit = RateLimit(rate=1, max_clients=3)
    for i, key in enumerate("abcd"):
        limit.allow(key, float(i))
    assert list(limit.clients) == ["b", "c", "d"]
    limit.allow("b", 10.0)
    assert list(limit.clients) == ["c", "d", "b"]


def test_a_clock_that_steps_back_does_not_credit_the_client():
    limit = RateLimit(rate=1)
    assert passed(limit, "a", [10.0, 5.0]) == [True, False]


@pytest.mark.parametrize("rate, burst", [(0, 0), (-1, 0), (1, -1)])
def test_nonsense_settings_are_refused(rate, burst):
    with pytest.raises(ValueError):
        RateLimit(rate=rate, burst=burst)
