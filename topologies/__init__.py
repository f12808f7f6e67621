"""Every lab network, one Mininet ``Topo`` per file, by name.

Each module holds one Topo subclass with only ``build()``, a docstring with
its drawing and address plan, and ``PARAMS`` (what a scenario's
``[topology]`` table may set). Hosts carry a ``role`` ('client', 'balancer',
'origin', ...) that the lab uses to place services. Building a Topo needs no
root: it is only a graph, which is how scenarios are validated and the SPOF
analysis runs anywhere.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any, Mapping

from mininet.topo import Topo

from lab.core.scenario import Layout
from lab.core.schema import ConfigError, check_table, suggest
from topologies import active_active, active_standby, bonding, l4_lab, proxy_chain, single_lb

MODULES: dict[str, tuple[ModuleType, type[Topo]]] = {
    "single_lb": (single_lb, single_lb.SingleLB),
    "active_standby": (active_standby, active_standby.ActiveStandby),
    "active_active": (active_active, active_active.ActiveActive),
    "bonding": (bonding, bonding.Bonding),
    "proxy_chain": (proxy_chain, proxy_chain.ProxyChain),
    "l4_lab": (l4_lab, l4_lab.L4Lab),
}


def names() -> list[str]:
    return sorted(MODULES)


def describe(name: str) -> str:
    module, _ = MODULES[name]
    return (module.__doc__ or "").strip()


def make(name: str, params: Mapping[str, Any] | None = None, source: str = "<topology>") -> tuple[Topo, dict[str, Any]]:
    """Build the Topo graph for ``name`` with checked parameters."""
    if name not in MODULES:
        raise ConfigError(source, "topology.name", f"no topology named {name!r}{suggest(name, names())} (known: {', '.join(names())})")
    module, cls = MODULES[name]
    values = check_table(dict(params or {}), module.PARAMS, source, "topology")
    return cls(**values), values


def layout_of(topo: Topo) -> Layout:
    nodes = {n: topo.nodeInfo(n).get("role", "switch" if topo.isSwitch(n) else "host") for n in topo.nodes(sort=True)}
    links = tuple((a, b) for a, b in topo.links(sort=True))
    info = {n: topo.nodeInfo(n) for n in nodes}
    addresses = {n: i["ip"].split("/")[0] for n, i in info.items() if "ip" in i}
    vrrp = {n: tuple(i["vrrp"]) for n, i in info.items() if i.get("vrrp")}
    targets = {n: i["target"] for n, i in info.items() if i.get("target")}
    bonds = {n: i["bond"] for n, i in info.items() if i.get("bond")}
    proxies = {n: tuple(i["proxies"]) for n, i in info.items() if i.get("proxies")}
    modes = {n: i["mode"] for n, i in info.items() if i.get("mode")}
    loopbacks = {n: tuple(i["loopback"]) for n, i in info.items() if i.get("loopback")}
    return Layout(nodes, links, addresses, vrrp, targets, bonds, proxies, modes, loopbacks)


def lookup(name: str, params: Mapping[str, Any], source: str) -> tuple[Layout, dict[str, Any]]:
    """The callback ``lab.core.scenario.parse_scenario`` uses to check topology names and nodes."""
    topo, values = make(name, params, source)
    return layout_of(topo), values
