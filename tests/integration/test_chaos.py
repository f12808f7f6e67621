"""The chaos matrix: seeded random faults on every topology, each run held to the invariants of a lab that heals.

One seed per topology, short runs (about a minute in all). The mixed pair
(gw2 on keepalived) is where the issue's defects lived: a master whose
cable came back and that never advertised again, a gateway that took its
VIP back before it could serve. ``halab chaos`` runs the same thing with
more seeds and faults (``--seed 21 --runs 2`` on a scenario like the mixed
pair's below replays the two seeds this test used to run).
"""
import pytest

from lab.chaos import run_chaos
from lab.runner import load_scenario

BASE = """
name = "{name}"
duration = 11
[topology]
name = "{topology}"
{extra}
[balancer.health]
inter = 0.5
timeout = 0.4
[balancer]
timeout_connect = 0.5
timeout_server = 0.5
retries = 1
[load]
rate = 30
timeout = 1.0
[chaos]
faults = 2
max_hold = 2.5
settle = 4.5
"""
MATRIX = {
    "single_lb": "",
    "active_standby": "gateways = 2\n[vrrp]\nadvert_interval = 0.1\nimpls = { gw2 = \"keepalived\" }",
    "active_active": "[vrrp]\nadvert_interval = 0.1",
    "bonding": "",
}
SEEDS = {"single_lb": (11,), "active_standby": (21,), "active_active": (31,), "bonding": (41,)}


@pytest.mark.parametrize("topology", sorted(MATRIX))
def test_the_lab_heals_after_every_chaos_repair(tmp_path, topology):
    path = tmp_path / f"{topology}.toml"
    path.write_text(BASE.format(name=f"chaos-{topology}", topology=topology, extra=MATRIX[topology]))
    scenario = load_scenario(path)
    runs = run_chaos(scenario, list(SEEDS[topology]), tmp_path / "runs", say=print)
    assert all(r.metrics is not None and r.metrics.recoveries for r in runs), "every run had at least one complete repair"
    problems = [f"seed {r.seed}: {v}" for r in runs for v in r.violations]
    assert problems == [], "\n".join(problems)
