"""HAProxy and nginx on the same network, from the same settings, judged by the same events."""
import dataclasses
import os
import random
import time

from lab.analysis import report
from lab.core.algorithms import make_algorithm
from lab.core.algorithms.base import Server
from lab.core.balancing import Pool
from lab.events import read_events
from lab.net.faults import Faults
from lab.net.lab import Lab
from lab.net.roles import plan_services
from lab.runner import load_scenario, run

from .conftest import alive

EX = "exercises/02-balancing-algorithms"


def scenario_with(name, **balancer):
    s = load_scenario(f"{EX}/{name}.toml")
    return dataclasses.replace(s, balancer=dataclasses.replace(s.balancer, **balancer))


def test_nginx_weighted_round_robin_order_equals_ours(tmp_path):
    run_dir = run(scenario_with("weighted", impl="nginx"), tmp_path / "nginx", live=False, say=lambda *a: None)
    routed = [e["server"] for e in read_events(run_dir) if e["kind"] == "request_routed"]
    ours = Pool([Server("o1", weight=5), Server("o2"), Server("o3")], make_algorithm("weighted_roundrobin"), random.Random(1))
    assert len(routed) == 300
    assert routed == [ours.pick().name for _ in routed]


def test_haproxy_and_halab_detect_a_cut_origin_within_one_check_interval(tmp_path):
    detection = {}
    for impl in ("haproxy", "halab"):
        scenario = scenario_with("retries", impl=impl, retries=0)
        run_dir = run(scenario, tmp_path / impl, live=False, say=lambda *a: None)
        (fault,) = report.build(run_dir).faults
        assert fault.detection is not None, f"{impl} never marked o1 DOWN"
        assert fault.detection <= scenario.balancer.health.worst_detection() + 0.1
        assert fault.routed_while_down == 0
        detection[impl] = fault.detection
    inter = scenario.balancer.health.inter
    assert abs(detection["haproxy"] - detection["halab"]) <= inter, detection


def test_crashing_the_balancer_node_takes_the_daemon_down_too(tmp_path):
    scenario = scenario_with("weighted", impl="haproxy")
    with Lab(scenario, tmp_path / "run", say=lambda *a: None) as lab:
        lab.start_all(plan_services(scenario, lab.addresses, lab.run_dir))
        ready = [e for e in read_events(lab.run_dir) if e["kind"] == "service_ready" and e.get("impl") == "haproxy"]
        daemon = ready[0]["daemon_pid"]
        assert alive(daemon)
        assert "served by o" in lab.net["c1"].cmd("curl -s -m 2 http://10.0.0.2/")
        Faults(lab).apply("crash", "lb1")
        deadline = time.time() + 3
        while alive(daemon) and time.time() < deadline:
            time.sleep(0.05)
        assert not alive(daemon), "HAProxy outlived its crashed wrapper"
        assert lab.net["c1"].cmd("curl -s -m 1 -o /dev/null -w '%{http_code}' http://10.0.0.2/").strip() == "000"
    assert os.path.exists(tmp_path / "run" / "conf" / "lb1-haproxy.cfg")
