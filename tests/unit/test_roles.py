import importlib.util
from pathlib import Path

import pytest
import tomllib

import topologies
from lab.core.roles import ROLES, RUNTIME_EVENTS, SERVICE_ROLES, TIERS
from lab.core.scenario import parse_scenario
from lab.core.schema import ConfigError
from lab.event_kinds import KINDS
from lab.net.roles import plan_load, plan_services, resolve
from lab.runner import load_scenario

from .test_event_kinds import emits

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


# ---- the registry (lab.core.roles) -------------------------------------------------------

def test_every_role_names_modules_and_planners_that_exist():
    for role in ROLES.values():
        for module in (role.module, *role.real.values()):
            assert importlib.util.find_spec(module) is not None, module
        assert callable(resolve(role.plan)) and (role.port is None or callable(resolve(role.port)))
    assert TIERS == ("team", "origin", "echo", "balancer", "proxy", "l4", "vrrp", "loadgen")
    assert SERVICE_ROLES == ("origin", "balancer", "proxy", "l4")


def test_each_role_writes_only_the_events_it_declares():
    found, _ = emits()
    by_module = {}
    for rel, line, kind, _, _ in found:
        by_module.setdefault(rel.removesuffix(".py").replace("/", "."), set()).add(kind)
    for role in ROLES.values():
        assert set(role.events) <= set(KINDS), role.name
        for module in (role.module, *role.real.values()):
            written = by_module.get(module, set()) - set(RUNTIME_EVENTS)
            assert written <= set(role.events), f"{module} writes {sorted(written - set(role.events))}, not declared by role {role.name}"


def parse_scenario_text(text):
    return parse_scenario(tomllib.loads(text), "s.toml", topologies.lookup)


BASE = """
name = "t"
duration = 10
[topology]
name = "single_lb"
"""


def test_load_can_aim_at_any_node_that_serves_clients():
    s = parse_scenario_text(BASE + '[load]\ntarget = "o2"\n[origins.nodes.o2]\nport = 8080\n')
    load = plan_load(s, ADDR, Path("/tmp/run"), 1.0)
    assert {(sp.config["target"], sp.config["port"]) for sp in load} == {("10.0.0.12", 8080)}
    s = parse_scenario_text(BASE + '[load]\ntarget = "lb1"\n')
    assert {sp.config["target"] for sp in plan_load(s, ADDR, Path("/tmp/run"), 1.0)} == {"10.0.0.2"}


@pytest.mark.parametrize("target, says", [("o7", "no node named 'o7'"), ("c2", "'c2' is a client and serves no clients"),
                                          ("s1", "is a switch")])
def test_a_load_target_that_serves_nothing_is_refused(target, says):
    with pytest.raises(ConfigError, match=says):
        parse_scenario_text(BASE + f'[load]\ntarget = "{target}"\n')


def test_a_role_with_its_own_section_needs_no_other_edit():
    """lab/services/echo.py: settings, planner and service in one module, one entry in the registry."""
    s = parse_scenario_text(BASE + "[echo]\nenabled = true\nport = 7007\n")
    specs = {sp.key: sp for sp in plan_services(s, ADDR, Path("/tmp/run"))}
    assert {k for k in specs if k.endswith("-echo")} == {"o1-echo", "o2-echo", "o3-echo"}
    assert specs["o1-echo"].module == "lab.services.echo" and specs["o1-echo"].config["port"] == 7007
    assert not any(k.endswith("-echo") for k in {sp.key for sp in plan_services(parse_scenario_text(BASE), ADDR, Path("/tmp/run"))})
    with pytest.raises(ConfigError, match="echo.prot: unknown key; did you mean 'port'"):
        parse_scenario_text(BASE + "[echo]\nprot = 7\n")
