"""Retry and admission decisions of the proxy (lab.core.dispatch), without a network."""
import pytest

from lab.core.dispatch import Admission, may_retry


@pytest.mark.parametrize("failed, retries, replayable, sent, method, expected", [
    (1, 0, True, False, "GET", False),    # retries = 0: halab's default shows every failure
    (1, 1, True, False, "POST", True),    # never left (connect refused): safe to move, whatever the method
    (1, 1, True, True, "POST", False),    # may have reached the server: a POST must not run twice
    (1, 1, True, True, "GET", True),      # idempotent: replayed (nginx proxy_next_upstream)
    (1, 1, True, True, "PUT", True),
    (1, 1, False, False, "GET", False),   # its streamed body is gone: nothing to replay
    (2, 1, True, False, "GET", False),    # attempts used up
    (2, 2, True, True, "DELETE", True),
])
def test_may_retry(failed, retries, replayable, sent, method, expected):
    assert may_retry(failed, retries, replayable, sent, method) is expected


def test_without_a_limit_everyone_goes_at_once():
    a = Admission(0)
    assert all(a.arrive(i) for i in range(100)) and a.in_flight == 100 and not a.queue


def test_past_the_limit_requests_wait_in_arrival_order():
    a = Admission(2)
    assert [a.arrive(x) for x in "abcd"] == [True, True, False, False]
    assert a.leave() == "c" and a.in_flight == 2
    assert a.leave() == "d" and a.leave() is None and a.leave() is None and a.in_flight == 0


def test_one_that_gave_up_while_queued_is_skipped():
    a = Admission(1)
    for x in "abcd":
        a.arrive(x)
    assert a.leave(lambda x: x != "b" and x != "c") == "d" and a.in_flight == 1 and not a.queue
