from pathlib import Path

from lab.net.roles import plan_load, plan_services
from lab.runner import load_scenario

ADDR = {"lb1": "10.0.0.2", "o1": "10.0.0.11", "o2": "10.0.0.12", "o3": "10.0.0.13", "c1": "10.0.0.101", "c2": "10.0.0.102"}


def test_every_origin_is_a_backend_and_every_client_aims_at_the_balancer():
    s = load_scenario("exercises/01-health-checks-and-failover/scenario.toml")
    specs = {sp.key: sp for sp in plan_services(s, ADDR, Path("/tmp/run"))}
    assert set(specs) == {"o1-origin", "o2-origin", "o3-origin", "lb1-balancer"}
    lb = specs["lb1-balancer"].config
    assert [(x["name"], x["address"]) for x in lb["servers"]] == [("o1", "10.0.0.11"), ("o2", "10.0.0.12"), ("o3", "10.0.0.13")]
    assert lb["health"]["inter"] == 0.5 and lb["health"]["fall"] == 3
    assert specs["o1-origin"].config["events"] == "/tmp/run/events/o1-origin.jsonl"
    assert all(len(sp.config["control"]) < 100 for sp in specs.values())
    load = plan_load(s, ADDR, Path("/tmp/run"), 123.0)
    assert [(sp.node, sp.config["target"], sp.config["start_at"]) for sp in load] == [("c1", "10.0.0.2", 123.0), ("c2", "10.0.0.2", 123.0)]
