"""Scenario files: what to build, what load to drive, what to break and when.

A scenario is a TOML file (see ``exercises/*/scenario.toml``). This module
turns the parsed table into frozen dataclasses and rejects every mistake it
can see *before* any network is built: unknown keys (with a did-you-mean),
wrong types and ranges, unknown nodes or links, fault times outside the run,
and timelines that make no sense (healing a link that is not cut, resuming
a node that is not paused). The topology is looked up through a callback,
so this module needs neither Mininet nor root.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from lab.core import client_limits
from lab.core.balancing import ALGORITHMS
from lab.core.client_limits import ClientLimits
from lab.core.faults import ACTIONS, BROKEN_SETS, LINK, NONE, PAIR
from lab.core.health import DEFAULT_FALL, DEFAULT_RISE, HealthSettings
from lab.core.roles import SERVICE_ROLES, SERVING_ROLES
from lab.core.schema import ConfigError, Field, check_table, suggest


@dataclass(frozen=True)
class Layout:
    """What a topology builds: node name -> role, and links as node pairs."""

    nodes: Mapping[str, str]
    links: tuple[tuple[str, str], ...]
    addresses: Mapping[str, str] = field(default_factory=dict)
    vrrp: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)  # node -> its VRRP groups
    targets: Mapping[str, str] = field(default_factory=dict)  # client -> the address it sends load to
    bonds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # node -> {"members": [...], "address": ...}

    def by_role(self, role: str) -> list[str]:
        return [n for n, r in self.nodes.items() if r == role]

    def links_of(self, node: str) -> list[tuple[str, str]]:
        return [link for link in self.links if node in link]


TopologyLookup = Callable[[str, Mapping[str, Any], str], tuple[Layout, Mapping[str, Any]]]

# The real daemons a scenario can run instead of halab's balancer, with how each
# halab algorithm is spelled there. An algorithm missing here has no faithful
# equivalent in that daemon, and the scenario is refused rather than approximated.
REAL_BALANCERS = {
    "haproxy": {"roundrobin": "balance static-rr", "weighted_roundrobin": "balance roundrobin", "leastconn": "balance leastconn",
                "source": "balance source", "hash": "balance uri", "consistent": "balance uri\n    hash-type consistent",
                "random": "balance random(1)", "p2c": "balance random(2)"},
    "nginx": {"roundrobin": "", "weighted_roundrobin": "", "weighted_leastconn": "least_conn;", "source": "ip_hash;",
              "hash": "hash $request_uri;", "consistent": "hash $request_uri consistent;", "p2c": "random two least_conn;",
              "random": "random;"},
}
NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,63}")  # a plain file name: no '/', no '..', no leading '.'

TOP = {
    "name": Field(str, help="a short name, used for the run directory"),
    "description": Field(str, default=""),
    "duration": Field(float, required=True, minimum=1, maximum=3600, help="seconds of load"),
    "seed": Field(int, default=1, help="seeds every random choice, so a run can be replayed"),
    "topology": Field(dict, required=True),
    "balancer": Field(dict, default={}),
    "origins": Field(dict, default={}),
    "load": Field(dict, default={}),
    "faults": Field(list, default=[], item=dict),
    "capture": Field(dict, default={}),
    "vrrp": Field(dict, default={}),
    "bond": Field(dict, default={}),
    "report": Field(dict, default={}),
    "expect": Field(dict, default={}),
    "chaos": Field(dict, default={}),
}
CHAOS = {
    "faults": Field(int, default=3, minimum=0, maximum=50, help="fault-and-repair pairs per chaos run"),
    "kinds": Field(list, default=["link", "flap", "power", "crash", "pause", "partition"], item=str,
                   help="what chaos may do: link, flap, power, crash, pause, partition"),
    "min_hold": Field(float, default=1.0, minimum=0.1, help="seconds a fault lasts, at least"),
    "max_hold": Field(float, default=4.0, minimum=0.1, help="seconds a fault lasts, at most"),
    "settle": Field(float, default=5.0, minimum=1, help="seconds between the last repair and the end of the load"),
    "reconverge_within": Field(float, default=None, minimum=0, help="the recovery bound chaos holds each repair to "
                               "(default: derived from the health, VRRP and client timeouts)"),
}
TOPOLOGY = {
    "name": Field(str, required=True, help="a name from `halab topos`"),
    "switch": Field(str, default="lxbr", choices=("lxbr", "ovsbr")),
}
BALANCER = {
    "impl": Field(str, default="halab", choices=("halab", "haproxy", "nginx"), help="whose balancer runs on the balancer nodes"),
    "algorithm": Field(str, default="roundrobin", choices=tuple(sorted(ALGORITHMS))),
    "port": Field(int, default=80, minimum=1, maximum=65535),
    "timeout_connect": Field(float, default=1.0, minimum=0.01, help="seconds (HAProxy 'timeout connect')"),
    "timeout_server": Field(float, default=2.0, minimum=0.01, help="seconds to wait for a response (HAProxy 'timeout server')"),
    "log_requests": Field(bool, default=True, help="one event per routed request"),
    "hash_key": Field(str, default="uri", help="for hash, consistent, maglev: uri, path, source or header:NAME"),
    "slowstart": Field(float, default=0.0, minimum=0, help="seconds over which a recovered server's weight ramps up (HAProxy slowstart)"),
    # halab's default is 0 so that failures stay visible; nginx retries by default
    # (proxy_next_upstream error timeout), HAProxy needs 'option redispatch'.
    "retries": Field(int, default=0, minimum=0, maximum=10, help="other servers to try after a connection error or timeout"),
    "maxconn": Field(int, default=0, minimum=0, help="requests in flight through one balancer; more wait in a queue (HAProxy maxconn; 0 = no limit)"),
    "bind": Field(list, default=None, item=str, help="addresses to listen on (default: the node's own and its VIPs; '0.0.0.0' = all)"),
    "health": Field(dict, default={}),
    "passive": Field(dict, default={}),
    **client_limits.fields(),  # what a client may send and how slowly: timeouts and limits (lab.core.client_limits)
}
PASSIVE = {
    "max_fails": Field(int, default=0, minimum=0, help="nginx max_fails (nginx default 1; 0 = off)"),
    "fail_timeout": Field(float, default=10.0, minimum=0.01, help="nginx fail_timeout, seconds"),
    "consecutive_errors": Field(int, default=0, minimum=0, help="Envoy consecutive_5xx (Envoy default 5; 0 = off)"),
    "base_ejection": Field(float, default=30.0, minimum=0.01, help="Envoy base_ejection_time, seconds"),
    "max_ejection_percent": Field(float, default=10.0, minimum=0, maximum=100),
}
HEALTH = {
    "kind": Field(str, default="http", choices=("http", "tcp", "icmp")),
    "path": Field(str, default="/health"),
    "expect_status": Field(int, default=0, minimum=0, maximum=599, help="exact status to pass (0: any 2xx/3xx, HAProxy httpchk)"),
    "expect_body": Field(str, default="", help="text the answer must contain (HAProxy http-check expect string)"),
    "inter": Field(float, default=2.0, minimum=0.05, help="seconds between probes (HAProxy default 2 s)"),
    "fastinter": Field(float, default=None, minimum=0.05),
    "downinter": Field(float, default=None, minimum=0.05),
    "timeout": Field(float, default=None, minimum=0.01, help="seconds a probe may take (default: inter)"),
    "rise": Field(int, default=DEFAULT_RISE, minimum=1, maximum=100),
    "fall": Field(int, default=DEFAULT_FALL, minimum=1, maximum=100),
}
ORIGIN = {
    "port": Field(int, default=80, minimum=1, maximum=65535),
    "latency_ms": Field(float, default=0.0, minimum=0, maximum=60000, help="added to every answer"),
    "capacity": Field(int, default=0, minimum=0, help="requests served at once; 0 = unlimited"),
    "weight": Field(int, default=1, minimum=0, maximum=256, help="balancing weight (HAProxy: 0-256, default 1)"),
    "backup": Field(bool, default=False, help="used only when every primary is down"),
    "log_requests": Field(bool, default=False, help="one event per request the origin parses (what really reached it)"),
    "bind": Field(list, default=None, item=str, help="addresses to listen on (default: the node's own; '0.0.0.0' = all)"),
    "nodes": Field(dict, default={}, help="per-origin overrides, e.g. [origins.nodes.o3] latency_ms = 200"),
}
LOAD = {
    "rate": Field(float, default=20.0, minimum=0.1, maximum=20000, help="requests per second per client"),
    "timeout": Field(float, default=3.0, minimum=0.01, help="seconds before the client gives up"),
    "path": Field(str, default="/", help="'{key}' in it is replaced by a random key below 'keys'"),
    "keys": Field(int, default=1000, minimum=1, help="how many distinct keys '{key}' takes (hashing lessons)"),
    "clients": Field(list, default=None, item=str, help="client nodes that send load (default: all)"),
    "max_in_flight": Field(int, default=512, minimum=1, help="open-loop guard: concurrent requests per client"),
    "target": Field(str, default=None, help="a node to send load to, e.g. an origin, bypassing the balancer "
                    "(default: the client's target in the topology, else the first balancer)"),
}
FAULT = {
    "at": Field(float, required=True, minimum=0, help="seconds after the load starts"),
    "action": Field(str, required=True, choices=tuple(ACTIONS)),
    "target": Field(str, default=None, help="a node (crash, pause...) or a link 'a-b' / a node with one link"),
    "note": Field(str, default="", help="shown in the live view and the report"),
}
VRRP = {
    "impl": Field(str, default="halab", choices=("halab", "keepalived"), help="whose VRRP speaker runs on the gateways"),
    "advert_interval": Field(float, default=1.0, minimum=0.01, maximum=40.95, help="seconds (RFC 5798 and keepalived default 1 s)"),
    "preempt": Field(bool, default=True, help="a higher-priority backup takes the VIP back (RFC 5798 default)"),
    "track": Field(bool, default=True, help="lower the priority while the local balancer cannot serve (GET /halab-ready)"),
    "track_weight": Field(int, default=60, minimum=1, maximum=254, help="how much the priority drops (keepalived weight)"),
    "track_interval": Field(float, default=1.0, minimum=0.1, maximum=60,
                            help="seconds between readiness checks (keepalived vrrp_script interval, default 1; whole seconds there)"),
    "track_fall": Field(int, default=2, minimum=1, maximum=20, help="failed checks in a row that lower the priority (keepalived fall)"),
    "track_rise": Field(int, default=1, minimum=1, maximum=20, help="passed checks in a row that restore it (keepalived rise, default 1)"),
    "preempt_delay": Field(float, default=0.0, minimum=0, maximum=1000,
                           help="extra seconds before preempting at startup or a lower-priority master (keepalived preempt_delay)"),
    "priorities": Field(dict, default={}, help="per-node priority overrides, e.g. gw2 = 200"),
    "impls": Field(dict, default={}, help="per-node speaker, e.g. gw2 = \"keepalived\" for a mixed pair"),
}
BOND = {
    "impl": Field(str, default="auto", choices=("auto", "kernel", "userspace"), help="kernel bonding where the kernel has it"),
    "mode": Field(str, default="active-backup", choices=("active-backup", "balance-rr", "balance-xor", "broadcast")),
    "miimon": Field(float, default=0.1, minimum=0.01, maximum=10, help="seconds between link checks (100 ms typical)"),
    "xmit_hash_policy": Field(str, default="layer2", choices=("layer2", "layer3+4"), help="for balance-xor"),
}
CAPTURE = {"interfaces": Field(list, default=[], item=str, help="interfaces to record as pcap, e.g. 'lb1-eth0'")}
REPORT = {
    "bucket": Field(float, default=1.0, minimum=0.1, help="seconds per time slot for time-based availability"),
    "good_ratio": Field(float, default=0.99, minimum=0, maximum=1, help="a slot is up when this share of its requests succeeded"),
    "merge_gap": Field(float, default=1.0, minimum=0, help="failures closer than this belong to one outage window"),
}
EXPECT = {
    "availability_min": Field(float, default=None, minimum=0, maximum=1, help="request availability at least this"),
    "max_detection": Field(float, default=None, minimum=0, help="every fault detected (health DOWN) within this many seconds"),
    "no_requests_after_detection": Field(bool, default=None, help="no request routed to a DOWN server"),
    "max_outage": Field(float, default=None, minimum=0, help="no outage window longer than this many seconds"),
    "reconverge_within": Field(float, default=None, minimum=0, help="after every repair: one MASTER per VIP, every origin UP "
                               "at every balancer and no failed request, within this many seconds"),
    "one_master_per_vip": Field(bool, default=None, help="after every repair each VIP ends up with exactly one MASTER"),
}


@dataclass(frozen=True)
class Fault:
    at: float
    action: str
    target: str | None
    note: str = ""
    index: int = 0  # position in the file, for messages

    @property
    def link(self) -> tuple[str, str] | None:
        if ACTIONS[self.action].target == LINK and self.target:
            a, _, b = self.target.partition("-")
            return (a, b)
        return None


@dataclass(frozen=True)
class OriginSettings:
    port: int = 80
    latency_ms: float = 0.0
    capacity: int = 0
    weight: int = 1
    backup: bool = False
    log_requests: bool = False
    bind: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BalancerSettings:
    algorithm: str = "roundrobin"
    port: int = 80
    timeout_connect: float = 1.0
    timeout_server: float = 2.0
    log_requests: bool = True
    hash_key: str = "uri"
    slowstart: float = 0.0
    retries: int = 0
    passive: Mapping[str, Any] = field(default_factory=dict)
    maxconn: int = 0
    health_kind: str = "http"
    health_path: str = "/health"
    health_expect_status: int = 0
    health_expect_body: str = ""
    impl: str = "halab"
    health: HealthSettings = field(default_factory=HealthSettings)
    client: ClientLimits = field(default_factory=ClientLimits)
    bind: tuple[str, ...] | None = None


@dataclass(frozen=True)
class LoadSettings:
    rate: float = 20.0
    timeout: float = 3.0
    path: str = "/"
    keys: int = 1000
    clients: tuple[str, ...] = ()
    max_in_flight: int = 512
    target: str | None = None


@dataclass(frozen=True)
class VrrpSettingsSpec:
    impl: str = "halab"
    advert_interval: float = 1.0
    preempt: bool = True
    track: bool = True
    track_weight: int = 60
    track_interval: float = 1.0
    track_fall: int = 2
    track_rise: int = 1
    preempt_delay: float = 0.0
    priorities: Mapping[str, int] = field(default_factory=dict)
    impls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BondSettings:
    impl: str = "auto"
    mode: str = "active-backup"
    miimon: float = 0.1
    xmit_hash_policy: str = "layer2"


@dataclass(frozen=True)
class ReportSettings:
    bucket: float = 1.0
    good_ratio: float = 0.99
    merge_gap: float = 1.0


@dataclass(frozen=True)
class Expectations:
    availability_min: float | None = None
    max_detection: float | None = None
    no_requests_after_detection: bool | None = None
    max_outage: float | None = None
    reconverge_within: float | None = None
    one_master_per_vip: bool | None = None


@dataclass(frozen=True)
class ChaosSpec:
    faults: int = 3
    kinds: tuple[str, ...] = ("link", "flap", "power", "crash", "pause", "partition")
    min_hold: float = 1.0
    max_hold: float = 4.0
    settle: float = 5.0
    reconverge_within: float | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration: float
    seed: int
    topology: str
    switch: str
    topology_params: Mapping[str, Any]
    layout: Layout
    balancer: BalancerSettings
    origins: Mapping[str, OriginSettings]
    load: LoadSettings
    faults: tuple[Fault, ...]
    capture: tuple[str, ...]
    vrrp: VrrpSettingsSpec
    bond: BondSettings
    report: ReportSettings
    expect: Expectations
    source: str = "<scenario>"
    chaos: ChaosSpec = field(default_factory=ChaosSpec)


def parse_scenario(data: Mapping[str, Any], source: str, lookup: TopologyLookup, default_name: str = "scenario") -> Scenario:
    """Validate a parsed scenario table; raise ``ConfigError`` on the first problem."""
    top = check_table(data, TOP, source, "")
    topo_table = dict(top["topology"])
    topo = check_table(topo_table, TOPOLOGY, source, "topology", extra=lambda k, v: True)
    params = {k: v for k, v in topo_table.items() if k not in TOPOLOGY}
    layout, params = lookup(topo["name"], params, source)

    bal = check_table(top["balancer"], BALANCER, source, "balancer")
    hc = check_table(bal["health"], HEALTH, source, "balancer.health")
    try:
        health = HealthSettings(hc["rise"], hc["fall"], hc["inter"], hc["fastinter"], hc["downinter"], hc["timeout"])
    except ValueError as e:
        raise ConfigError(source, "balancer.health", str(e)) from None
    passive = check_table(bal["passive"], PASSIVE, source, "balancer.passive")
    if bal["algorithm"] in ("hash", "consistent", "maglev") and not (bal["hash_key"] in ("uri", "path", "source") or bal["hash_key"].startswith("header:")):
        raise ConfigError(source, "balancer.hash_key", f"got {bal['hash_key']!r}, expected uri, path, source or header:NAME")
    if bal["impl"] != "halab":
        known = REAL_BALANCERS[bal["impl"]]
        if bal["algorithm"] not in known:
            raise ConfigError(source, "balancer.algorithm", f"{bal['algorithm']!r} has no {bal['impl']} equivalent; with impl = "
                              f"{bal['impl']!r} use one of: {', '.join(known)}")
        if bal["algorithm"] in ("hash", "consistent") and bal["hash_key"] != "uri":
            raise ConfigError(source, "balancer.hash_key", f"only 'uri' is rendered for {bal['impl']} so far")
    try:
        limits = client_limits.from_config(bal)
    except ValueError as e:
        raise ConfigError(source, "balancer", str(e)) from None
    if top["name"] is not None and not NAME.fullmatch(top["name"]):
        raise ConfigError(source, "name", f"got {top['name']!r}; a scenario name becomes part of the run directory's name, so it "
                          "may hold only letters, digits, '-', '_' and '.', and may not start with '.' (e.g. 'failover-basics')")
    balancer = BalancerSettings(bal["algorithm"], bal["port"], bal["timeout_connect"], bal["timeout_server"], bal["log_requests"],
                                bal["hash_key"], bal["slowstart"], bal["retries"], passive, bal["maxconn"], hc["kind"], hc["path"],
                                hc["expect_status"], hc["expect_body"], bal["impl"], health, limits, _bind(bal["bind"], source, "balancer.bind"))

    origins = _origins(top["origins"], layout, source)
    load = _load(top["load"], layout, source)
    faults = _faults(top["faults"], top["duration"], layout, source)
    capture = check_table(top["capture"], CAPTURE, source, "capture")
    vrrp = _vrrp(top["vrrp"], layout, source)
    if top["bond"] and not layout.bonds:
        raise ConfigError(source, "bond", "this topology has no bonded interface (try bonding)")
    bond = BondSettings(**check_table(top["bond"], BOND, source, "bond"))
    report = ReportSettings(**check_table(top["report"], REPORT, source, "report"))
    expect = Expectations(**check_table(top["expect"], EXPECT, source, "expect"))
    chaos = check_table(top["chaos"], CHAOS, source, "chaos")
    for i, kind in enumerate(chaos["kinds"]):
        known = CHAOS["kinds"].default
        if kind not in known:
            raise ConfigError(source, f"chaos.kinds[{i}]", f"got {kind!r}{suggest(kind, known)}, expected one of {', '.join(known)}")
    if chaos["min_hold"] > chaos["max_hold"]:
        raise ConfigError(source, "chaos.min_hold", f"{chaos['min_hold']} s is more than max_hold ({chaos['max_hold']} s)")
    chaos["kinds"] = tuple(chaos["kinds"])
    return Scenario(
        name=top["name"] or default_name,
        description=top["description"],
        duration=top["duration"],
        seed=top["seed"],
        topology=topo["name"],
        switch=topo["switch"],
        topology_params=params,
        layout=layout,
        balancer=balancer,
        origins=origins,
        load=load,
        faults=faults,
        capture=tuple(capture["interfaces"]),
        vrrp=vrrp,
        bond=bond,
        report=report,
        expect=expect,
        source=source,
        chaos=ChaosSpec(**chaos),
    )


def _bind(addresses: list[str] | None, source: str, where: str) -> tuple[str, ...] | None:
    if addresses is None:
        return None
    for i, address in enumerate(addresses):
        parts = address.split(".")
        if len(parts) != 4 or not all(p.isascii() and p.isdigit() and int(p) < 256 for p in parts):
            raise ConfigError(source, f"{where}[{i}]", f"got {address!r}, expected an IPv4 address such as '10.0.0.2' or '0.0.0.0'")
    return tuple(addresses)


def _origins(table: Mapping[str, Any], layout: Layout, source: str) -> dict[str, OriginSettings]:
    base = check_table(table, ORIGIN, source, "origins")
    names = layout.by_role("origin")
    base["bind"] = _bind(base["bind"], source, "origins.bind")
    per_node = {k: v for k, v in base.items() if k != "nodes"}
    out = {name: OriginSettings(**per_node) for name in names}
    for node, override in base["nodes"].items():
        if node not in names:
            raise ConfigError(source, f"origins.nodes.{node}", f"no origin named {node!r}{suggest(node, names)} (origins: {', '.join(names)})")
        fields = {k: v for k, v in ORIGIN.items() if k != "nodes"}
        values = check_table(override, {k: Field(f.kind, per_node[k], False, f.minimum, f.maximum, item=f.item) for k, f in fields.items()},
                             source, f"origins.nodes.{node}")
        if "bind" in override:
            values["bind"] = _bind(override["bind"], source, f"origins.nodes.{node}.bind")
        out[node] = OriginSettings(**values)
    return out


def _vrrp(table: Mapping[str, Any], layout: Layout, source: str) -> VrrpSettingsSpec:
    values = check_table(table, VRRP, source, "vrrp")
    if table and not layout.vrrp:
        raise ConfigError(source, "vrrp", "this topology has no VRRP gateways (try active_standby)")
    for node, priority in values["priorities"].items():
        if node not in layout.vrrp:
            raise ConfigError(source, f"vrrp.priorities.{node}", f"no VRRP node named {node!r}{suggest(node, list(layout.vrrp))}")
        if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 255:
            raise ConfigError(source, f"vrrp.priorities.{node}", f"got {priority!r}, expected a whole number from 1 to 255")
    for node, impl in values["impls"].items():
        if node not in layout.vrrp:
            raise ConfigError(source, f"vrrp.impls.{node}", f"no VRRP node named {node!r}{suggest(node, list(layout.vrrp))}")
        if impl not in ("halab", "keepalived"):
            raise ConfigError(source, f"vrrp.impls.{node}", f"got {impl!r}, expected 'halab' or 'keepalived'{suggest(str(impl), ['halab', 'keepalived'])}")
    uses_keepalived = values["impl"] == "keepalived" or "keepalived" in values["impls"].values()
    if uses_keepalived and values["track"] and values["track_interval"] != int(values["track_interval"]):
        raise ConfigError(source, "vrrp.track_interval", f"got {values['track_interval']}; keepalived runs track scripts every whole "
                          "second (vrrp_script interval is an integer), so with keepalived use 1, 2, ...")
    return VrrpSettingsSpec(**values)


def _load(table: Mapping[str, Any], layout: Layout, source: str) -> LoadSettings:
    values = check_table(table, LOAD, source, "load")
    all_clients = layout.by_role("client")
    clients = values["clients"] if values["clients"] is not None else all_clients
    for i, name in enumerate(clients):
        if name not in all_clients:
            raise ConfigError(source, f"load.clients[{i}]", f"no client named {name!r}{suggest(name, all_clients)} (clients: {', '.join(all_clients)})")
    if not clients:
        raise ConfigError(source, "load.clients", "needs at least one client")
    target = values["target"]
    if target is not None:
        serving = [n for n, r in layout.nodes.items() if r in SERVING_ROLES]
        if target not in layout.nodes:
            raise ConfigError(source, "load.target", f"no node named {target!r}{suggest(target, serving)} (nodes that serve "
                              f"clients: {', '.join(serving)})")
        if target not in serving:
            raise ConfigError(source, "load.target", f"{target!r} is a {layout.nodes[target]} and serves no clients "
                              f"(nodes that do: {', '.join(serving)})")
    values["clients"] = tuple(clients)
    return LoadSettings(**values)


def resolve_link(target: str, layout: Layout) -> tuple[str, str] | str:
    """A link from 'a-b', 'b-a' or a node that has exactly one link; or an error sentence."""
    if target in layout.nodes:
        links = layout.links_of(target)
        if len(links) == 1:
            return links[0]
        pretty = ", ".join(f"{a}-{b}" for a, b in links)
        return f"node {target!r} has {len(links)} links ({pretty}); name one as 'a-b'"
    a, sep, b = target.partition("-")
    if sep:
        for link in layout.links:
            if link in ((a, b), (b, a)):
                return link
        return f"no link between {a!r} and {b!r}"
    return f"no node or link named {target!r}{suggest(target, list(layout.nodes))}"


def resolve_pair(target: str, layout: Layout) -> tuple[str, str] | str:
    """'a/b' -> (a, b) in name order, or an error sentence."""
    a, sep, b = target.partition("/")
    if not sep:
        return f"{target!r} is not a pair of nodes; write 'a/b', e.g. 'gw1/gw2'"
    for name in (a, b):
        if name not in layout.nodes or layout.nodes[name] == "switch":
            return f"no host named {name!r}{suggest(name, [n for n, r in layout.nodes.items() if r != 'switch'])}"
    if a == b:
        return f"a node cannot be cut off from itself ({target!r})"
    first, second = sorted((a, b))
    return (first, second)


def parse_faults(items: list[dict[str, Any]], duration: float, layout: Layout, source: str) -> tuple[Fault, ...]:
    """``[[faults]]`` entries checked and in time order, as a scenario file's are (for timelines made elsewhere: chaos)."""
    return _faults(items, duration, layout, source)


def _faults(items: list[dict[str, Any]], duration: float, layout: Layout, source: str) -> tuple[Fault, ...]:
    faults = []
    for i, item in enumerate(items):
        where = f"faults[{i}]"
        values = check_table(item, FAULT, source, where)
        action, target = values["action"], values["target"]
        kind = ACTIONS[action].target
        if values["at"] > duration:
            raise ConfigError(source, f"{where}.at", f"{values['at']} s is after the run ends (duration = {duration} s)")
        if kind == NONE:
            if target is not None:
                raise ConfigError(source, f"{where}.target", f"'{action}' undoes every fault and takes no target")
        elif target is None:
            raise ConfigError(source, f"{where}.target", f"action {action!r} needs a target")
        elif kind == PAIR:
            pair = resolve_pair(target, layout)
            if isinstance(pair, str):
                raise ConfigError(source, f"{where}.target", pair)
            target = f"{pair[0]}/{pair[1]}"
        elif kind == LINK:
            link = resolve_link(target, layout)
            if isinstance(link, str):
                raise ConfigError(source, f"{where}.target", link)
            target = f"{link[0]}-{link[1]}"
        else:
            if target not in layout.nodes:
                raise ConfigError(source, f"{where}.target", f"no node named {target!r}{suggest(target, list(layout.nodes))}")
            if layout.nodes[target] not in SERVICE_ROLES:
                raise ConfigError(source, f"{where}.target", f"{target!r} is a {layout.nodes[target]} and runs no service to {action}")
        faults.append(Fault(values["at"], action, target, values["note"], i))
    ordered = tuple(sorted(faults, key=lambda f: (f.at, f.index)))
    _check_timeline(ordered, source)
    return ordered


def _check_timeline(faults: tuple[Fault, ...], source: str) -> None:
    """Replay the timeline on sets of broken things; reject moves that cannot happen."""
    broken: dict[str, set[str]] = {kind: set() for kind in BROKEN_SETS}
    for f in faults:
        action = ACTIONS[f.action]
        if action.broken is None:  # restore
            for items in broken.values():
                items.clear()
            continue
        kind, must_be_broken = action.broken, action.is_repair
        target = f.target or ""
        if (target in broken[kind]) != must_be_broken:
            raise ConfigError(source, f"faults[{f.index}]", action.complaint(target, f.at))
        gone = broken["off"] if f.action == "crash" else broken["crashed"] | broken["off"]
        if f.action in ("pause", "resume", "crash") and target in gone:
            raise ConfigError(source, f"faults[{f.index}]", f"{target} is crashed or powered off at {f.at} s; bring it back before you {f.action} it")
        if must_be_broken:
            broken[kind].discard(target)
        else:
            broken[kind].add(target)
