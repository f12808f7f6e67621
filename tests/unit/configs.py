"""Configs for services built in-process by unit tests, made the way the lab makes them (lab.net.roles)."""
import textwrap

import tomllib

from lab.core import client_limits
from lab.core.scenario import BalancerSettings, OriginSettings
from lab.core.schema import build
from lab.net.roles import balancer_config, server_entry


def balancer(node="lb1", servers=(), health=None, passive=None, **settings):
    """A balancer's JSON config: ``servers`` as {"name", "address", "port"}, settings as [balancer] keys."""
    b = build(BalancerSettings, {**settings, "client": client_limits.from_config(settings)})
    entries = [server_entry(s["name"], s["address"], build(OriginSettings, s)) for s in servers]
    cfg = balancer_config(b, entries, seed=1)
    cfg["health"].update(health or {})
    cfg["passive"].update(passive or {})
    return {"node": node, **cfg}


def scenario_from(text, source="s.toml"):
    """A scenario from TOML text (indentation removed), checked as a scenario file's is; ``source`` names it in errors
    and anchors the paths in it (a student's algorithm file)."""
    import topologies
    from lab.core.scenario import parse_scenario

    return parse_scenario(tomllib.loads(textwrap.dedent(text)), source, topologies.lookup)
