"""The gray failure: a frozen origin fools ICMP and TCP checks, not HTTP ones.

Three balancers run side by side on lb1 with the same timers, probing with
HTTP (port 80), TCP (81) and ICMP (82). o3 is frozen with SIGSTOP. Only the
HTTP-checking balancer may mark it DOWN; the other two must have kept
probing it, and passing, the whole time.
"""
import json
import time

from lab.net.faults import Faults
from lab.net.lab import Lab
from lab.net.roles import plan_services
from lab.runner import load_scenario
from lab.services.runtime import call

from .conftest import wait_event, wait_until

KINDS = {"http": "lb1-balancer", "tcp": "lb1-balancer-tcp", "icmp": "lb1-balancer-icmp"}


def test_frozen_origin_passes_icmp_and_tcp_checks_but_fails_http(tmp_path):
    scenario = load_scenario("exercises/01-health-checks-and-failover/scenario.toml")
    with Lab(scenario, tmp_path / "run", say=lambda *a: None) as lab:
        specs = plan_services(scenario, lab.addresses, lab.run_dir)
        http = next(s for s in specs if s.service == "balancer")
        others = [http.another(kind, port=port, health=dict(http.config["health"], kind=kind)) for kind, port in (("tcp", 81), ("icmp", 82))]
        lab.start_all(specs + others)
        sockets = {kind: lab.services[key].spec.config["control"] for kind, key in KINDS.items()}

        def o3(kind):
            return call(sockets[kind], "stats")["servers"]["o3"]
        wait_until(lambda: all(o3(kind)["checks"] for kind in KINDS), 2.0, "first probe of o3 by every balancer")
        before = {kind: o3(kind)["checks"] for kind in KINDS}
        paused = time.time()
        Faults(lab).apply("pause", "o3")
        wait_event(lab.run_dir, lambda e: e["kind"] == "health_changed" and e["server"] == "o3" and e["t"] > paused,
                   scenario.balancer.health.worst_detection() + 1.0, "o3 DOWN at the HTTP-checking balancer")
        # the TCP and ICMP balancers go on probing the frozen o3: three more probes each, all passed
        wait_until(lambda: all(o3(kind)["checks"] >= before[kind] + 3 for kind in ("tcp", "icmp")),
                   3 * scenario.balancer.health.inter + 1.0, "three more TCP and ICMP probes")
        after = {kind: o3(kind) for kind in KINDS}
        changes = {kind: [json.loads(line) for line in (lab.run_dir / "events" / f"{key}.jsonl").read_text().splitlines()
                          if '"kind":"health_changed"' in line and '"server":"o3"' in line] for kind, key in KINDS.items()}
    assert [c["after"] for c in changes["http"]] == ["DOWN"]
    assert "no answer" in changes["http"][0]["reason"]
    assert changes["tcp"] == [] and changes["icmp"] == [], "a frozen process must still pass TCP and ICMP checks"
    for kind, expected in (("tcp", "pass: TCP connect ok"), ("icmp", "pass: ICMP echo reply")):
        assert after[kind]["checks"] >= before[kind] + 3, f"the {kind} balancer stopped probing o3"
        assert after[kind]["state"] == "UP 3/3" and after[kind]["last_check"] == expected
    assert after["http"]["state"].startswith("DOWN")
