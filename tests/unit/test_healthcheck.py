"""The shared health checker: probes feed HAProxy-style counters, transitions reach the owner and the log."""
import asyncio
import json

from lab.core.health import HealthSettings
from lab.events import EventLog
from lab.services.healthcheck import HealthChecker, Probe, Target

T = Target("o1", "127.0.0.1", 1)


def scripted(results):
    """A probe that answers from a list: True, False, or an exception to raise, or a number of seconds to hang."""
    results = list(results)

    async def probe(address, port):
        r = results.pop(0)
        if isinstance(r, BaseException):
            raise r
        if isinstance(r, float):
            await asyncio.sleep(r)
        return r is True, "HTTP 200" if r is True else "HTTP 503"
    return probe


def run(checker, n):
    async def go():
        return [await checker.check_once(T) for _ in range(n)]
    return asyncio.run(go())


def test_fall_failures_take_a_target_down_and_rise_passes_bring_it_back(tmp_path):
    changes = []
    log = EventLog(tmp_path / "e.jsonl", "lb1", "balancer")
    checker = HealthChecker([T], HealthSettings(rise=2, fall=2, inter=1.0), Probe(), log, lambda n, up: changes.append((n, up)))
    checker.probe = scripted([True, False, False, True, True])
    results = run(checker, 5)
    assert [r[2] is not None for r in results] == [False, False, True, False, True]
    assert changes == [("o1", False), ("o1", True)] and checker.ready("o1")
    events = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    assert [(e["kind"], e.get("label")) for e in events] == [
        ("health_checked", "UP 2/2"), ("health_checked", "UP 1/2"), ("health_checked", "DOWN 0/2"), ("health_changed", "DOWN 0/2"),
        ("health_checked", "DOWN 1/2"), ("health_checked", "UP 2/2"), ("health_changed", "UP 2/2")]


def test_a_target_that_starts_down_is_not_ready_until_a_probe_passes():
    checker = HealthChecker([T], HealthSettings(rise=1, fall=2, inter=1.0), Probe(), start_up=False)
    assert not checker.ready("o1") and not checker.counters["o1"].up
    checker.probe = scripted([True])
    run(checker, 1)
    assert checker.ready("o1")


def test_trusted_at_start_is_not_ready_before_its_first_probe():
    checker = HealthChecker([T], HealthSettings(), Probe())
    assert checker.counters["o1"].up and not checker.ready("o1")


def test_every_way_a_probe_fails_is_a_failed_probe_with_a_reason():
    checker = HealthChecker([T], HealthSettings(rise=1, fall=9, inter=0.05), Probe())
    checker.probe = scripted([ConnectionRefusedError(), OSError(101, "Network is unreachable"), 1.0])
    details = [detail for ok, detail, _ in run(checker, 3)]
    assert details == ["connection refused", "OSError: [Errno 101] Network is unreachable", "no answer within 0.05 s"]
    assert checker.last_check["o1"] == (3, "fail: no answer within 0.05 s")


def test_first_probes_are_spread_over_one_interval():
    targets = [Target(f"o{i}", "127.0.0.1", 1) for i in range(4)]
    assert HealthChecker(targets, HealthSettings(inter=2.0), Probe()).first_delays() == [0.0, 0.5, 1.0, 1.5]
