"""Typed settings end to end: declared once in a dataclass, checked from the scenario, rebuilt by the service."""
import ast
import dataclasses
from pathlib import Path

import pytest

from lab.core import client_limits, scenario
from lab.core.cache import CacheSettings
from lab.core.health import HealthSettings, ProbeSettings
from lab.core.passive import PassiveSettings
from lab.core.scenario import (
    BalancerSettings,
    BondSettings,
    ChaosSpec,
    Expectations,
    LoadSettings,
    OriginSettings,
    ReportSettings,
    VrrpSettingsSpec,
)
from lab.core.schema import as_config, build, check_table, fields_of, from_config
from lab.net.render import DIRECTIVES
from lab.net.roles import plan_services
from lab.runner import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = [(scenario.ORIGIN, OriginSettings), (scenario.LOAD, LoadSettings), (scenario.VRRP, VrrpSettingsSpec),
            (scenario.BOND, BondSettings), (scenario.REPORT, ReportSettings), (scenario.EXPECT, Expectations),
            (scenario.CHAOS, ChaosSpec), (scenario.PASSIVE, PassiveSettings), (scenario.HEALTH, HealthSettings),
            (scenario.HEALTH, ProbeSettings), (scenario.BALANCER, BalancerSettings), (scenario.BALANCER, client_limits.ClientLimits)]


@pytest.mark.parametrize("table, cls", SECTIONS, ids=lambda x: getattr(x, "__name__", ""))
def test_each_scenario_key_is_generated_from_its_settings_dataclass(table, cls):
    generated = fields_of(cls)
    assert generated and all(table[name] == f for name, f in generated.items())
    # an empty section gives exactly the dataclass's own defaults: no default is written twice
    assert build(cls, check_table({}, generated, "s.toml", "x")) == cls()


def test_every_setting_has_a_type_the_scenario_can_check():
    for _, cls in SECTIONS:
        for f in dataclasses.fields(cls):
            if "setting" in f.metadata:
                assert fields_of(cls)[f.name].kind in (int, float, bool, str, list, dict)


SHIPPED = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "exercises").rglob("*.toml"))


def load_shipped(path):
    """A shipped scenario; one that runs a student's starter file is read with the exercise's solution in its place
    (the starter is unfilled on purpose, and halab check says "not implemented yet" for it)."""
    text = (ROOT / path).read_text()
    if "starter/" not in text:
        return load_scenario(ROOT / path)
    import tomllib

    import topologies
    from lab.core.scenario import parse_scenario

    return parse_scenario(tomllib.loads(text.replace("starter/", "solution/")), str(ROOT / path), topologies.lookup)


@pytest.mark.parametrize("path", SHIPPED)
def test_services_rebuild_the_settings_the_scenario_built(path):
    s = load_shipped(path)
    addresses = {n: f"10.0.0.{i + 2}" for i, n in enumerate(s.layout.nodes)}
    for spec in plan_services(s, addresses, Path("/tmp/run")):
        cfg = spec.config
        if spec.service == "balancer":
            b = s.balancer
            assert from_config(BalancerSettings, cfg) == dataclasses.replace(b, probe=ProbeSettings(), health=HealthSettings(),
                                                                                passive=PassiveSettings(), client=client_limits.ClientLimits(),
                                                                                cache=CacheSettings(), bind=tuple(cfg["bind"]))
            assert from_config(CacheSettings, cfg["cache"]) == b.cache
            assert from_config(HealthSettings, cfg["health"]) == b.health and from_config(ProbeSettings, cfg["health"]) == b.probe
            assert from_config(PassiveSettings, cfg["passive"]) == b.passive and client_limits.from_config(cfg) == b.client
        elif spec.service == "origin":
            assert from_config(OriginSettings, cfg) == dataclasses.replace(s.origins[spec.node], bind=tuple(cfg["bind"]))
        elif spec.service == "vrrp":
            v = from_config(VrrpSettingsSpec, cfg)
            assert (v.advert_interval, v.track_interval, v.track_fall, v.track_rise) == (
                s.vrrp.advert_interval, s.vrrp.track_interval, s.vrrp.track_fall, s.vrrp.track_rise)
        elif spec.service == "team":
            assert from_config(BondSettings, cfg) == s.bond


def test_as_config_and_from_config_round_trip():
    b = BalancerSettings(retries=2, bind=("10.0.0.2",), health=HealthSettings(rise=1, fall=5, inter=0.5))
    assert build(BalancerSettings, {**as_config(b), "health": b.health, "probe": b.probe, "passive": b.passive,
                                    "client": b.client, "cache": b.cache}) == b


def test_services_take_no_defaults_of_their_own():
    """A service reads its settings through from_config; a cfg.get(key, default) would be a second copy of a default."""
    allowed = {("runtime.py", "fast_loop")}  # not a scenario setting: tests may run a service on plain asyncio
    for path in (ROOT / "lab" / "services").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and ast.unparse(node.func.value) in ("cfg", "self.cfg", "config", "ctx.config", "self.ctx.config")
                    and len(node.args) == 2):
                key = ast.literal_eval(node.args[0]) if isinstance(node.args[0], ast.Constant) else "?"
                assert (path.name, key) in allowed, f"{path.name}:{node.lineno}: {ast.unparse(node)}"


def test_real_daemon_spellings_cover_exactly_what_scenarios_allow():
    from lab.net.render_varnish import DIRECTORS

    spelled = {**DIRECTIVES, "varnish": DIRECTORS}
    assert {impl: set(table) for impl, table in spelled.items()} == {impl: set(algos) for impl, algos in scenario.REAL_BALANCERS.items()}
