"""The flagship scenario end to end, judged by what the network did.

One run (about 40 s) of exercises/01: o1's link is cut at 5 s, o2 crashes at
15 s, o3 freezes at 25 s, each repaired. Every assertion reads the events
the services wrote: the load generators' request records and the
balancer's routing and health events.
"""
import os
from pathlib import Path

import pytest

from lab.analysis import report
from lab.events import read_events
from lab.runner import load_scenario

from .conftest import DEMO, alive, root_interfaces


@pytest.fixture(scope="module")
def demo(shipped):
    scenario = load_scenario(DEMO)
    before = root_interfaces()
    run_dir = shipped(DEMO)  # this file runs before test_shipped_scenarios, so ``before`` precedes the run
    events = read_events(run_dir)
    metrics = report.build(run_dir)
    report.write(metrics, run_dir)
    return scenario, run_dir, events, metrics, before


def requests(events):
    return [e for e in events if e["kind"] == "request_finished"]


def fault(events, action):
    return next(e for e in events if e["kind"] == "fault_applied" and e["action"] == action)


def first_down(events, server, after):
    return next(e["t"] for e in events if e["kind"] == "health_changed" and e["server"] == server and e["after"] == "DOWN" and e["t"] >= after)


def test_every_due_request_was_sent_and_recorded_once(demo):
    scenario, _, events, _, _ = demo
    reqs = requests(events)
    per_client = int(scenario.duration * scenario.load.rate)
    assert len(reqs) == per_client * len(scenario.load.clients)
    assert len({r["id"] for r in reqs}) == len(reqs), "a request was counted twice"


def test_report_availability_equals_a_direct_count(demo):
    _, _, events, metrics, _ = demo
    reqs = requests(events)
    ok = sum(1 for r in reqs if r["status"] is not None and 200 <= r["status"] < 400)
    assert metrics.total == len(reqs) and metrics.ok == ok
    assert metrics.request_availability == pytest.approx(ok / len(reqs))
    assert 0.90 < metrics.request_availability < 1.0, "faults must cost some requests, redundancy must save most"


@pytest.mark.parametrize("action,origin,error", [("link_down", "o1", "http_504"), ("crash", "o2", "http_502"), ("pause", "o3", "http_504")])
def test_failures_stop_at_detection_and_detection_is_within_the_bound(demo, action, origin, error):
    scenario, _, events, _, _ = demo
    f = fault(events, action)
    down = first_down(events, origin, f["t"])
    bound = scenario.balancer.health.worst_detection()  # inter + fall x timeout + (fall-1) x fastinter = 2.7 s
    slack = 0.1  # event-loop and process scheduling on a loaded 2-core VM
    assert 0 < down - f["t"] <= bound + slack, f"{action} {origin} detected after {down - f['t']:.2f} s, bound {bound} s"
    blamed = [r for r in requests(events) if not r["ok"] and r.get("upstream") == origin]
    assert blamed, f"no request failed on {origin}: the fault did not bite"
    assert all(f["t"] - 1 <= r["t"] < down for r in blamed), "a request failed on the origin outside fault..detection"
    assert {r["error"] for r in blamed} == {error}
    up = next(e["t"] for e in events if e["kind"] == "health_changed" and e["server"] == origin and e["after"] == "UP" and e["t"] > down)
    routed = [e for e in events if e["kind"] == "request_routed" and e["server"] == origin and down < e["t"] < up]
    assert routed == [], f"{len(routed)} requests routed to {origin} while it was DOWN"


def test_other_origins_never_fail(demo):
    _, _, events, _, _ = demo
    for r in requests(events):
        if not r["ok"]:
            f_o = {"o1": "link_down", "o2": "crash", "o3": "pause"}[r["upstream"]]
            f = fault(events, f_o)
            assert r["t"] >= f["t"] - 1


def test_everything_serves_again_after_restore(demo):
    _, _, events, metrics, _ = demo
    last = [r for r in requests(events) if r["t"] > metrics.load_end - 3]
    assert all(r["ok"] for r in last)
    assert {r["served_by"] for r in last} == {"o1", "o2", "o3"}
    for f in metrics.faults:
        assert f.recovery is not None and f.recovery < 2.0, f"{f.action} {f.target} not back UP soon after repair"


def test_report_files_and_expectations(demo):
    _, run_dir, _, metrics, _ = demo
    assert all(c.passed for c in metrics.checks), [c for c in metrics.checks if not c.passed]
    for name in ("report.json", "report.md", "timeline.png", "run.json", "scenario.toml"):
        assert (Path(run_dir) / name).stat().st_size > 0
    assert "| link_down o1-s1 |" in (Path(run_dir) / "report.md").read_text()
    rebuilt = report.build(run_dir)
    assert rebuilt == metrics, "the report must be a pure function of the events"


def test_cleanup_left_nothing_behind(demo):
    _, _, events, _, before = demo
    pids = [e["pid"] for e in events if e["kind"] == "service_started"]
    assert len(pids) >= 7  # 3 origins, 1 balancer, 2 clients, 1 restart
    assert not [p for p in pids if alive(p)]
    assert root_interfaces() - before == set()
    assert "s1" not in root_interfaces()
    assert not os.path.exists("/run/halab/ledger.json")
