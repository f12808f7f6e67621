"""Scenario files: what to build, what load to drive, what to break and when.

A scenario is a TOML file (see ``exercises/*/scenario.toml``). This module
turns the parsed table into frozen dataclasses and rejects every mistake it
can see *before* any network is built: unknown keys (with a did-you-mean),
wrong types and ranges, unknown nodes, student classes that do not fit
their seam. The ``[[faults]]`` timeline is checked by ``lab.core.timeline``
(unknown links, fault times outside the run, healing a link that is not
cut). The topology is looked up through a callback, so this module needs
neither Mininet nor root.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from lab.core import client_limits, plugins
from lab.core.balancing import ALGORITHMS
from lab.core.cache import CacheSettings
from lab.core.client_limits import ClientLimits
from lab.core.cluster import ClusterSettings, check_cluster, check_fits
from lab.core.faults import CHAOS_KINDS
from lab.core.health import HealthSettings, ProbeSettings
from lab.core.passive import PassiveSettings
from lab.core.roles import OWN_SECTIONS, SERVING_ROLES, resolve
from lab.core.schema import ConfigError, Field, build, check_table, fields_of, setting, suggest
from lab.core.timeline import Fault, parse_faults


@dataclass(frozen=True)
class Layout:
    """What a topology builds: node name -> role, and links as node pairs."""

    nodes: Mapping[str, str]
    links: tuple[tuple[str, str], ...]
    addresses: Mapping[str, str] = field(default_factory=dict)
    vrrp: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)  # node -> its VRRP groups
    targets: Mapping[str, str] = field(default_factory=dict)  # client -> the address it sends load to
    bonds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # node -> {"members": [...], "address": ...}
    proxies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # client -> the proxies it uses, in order ("DIRECT": none)
    modes: Mapping[str, str] = field(default_factory=dict)  # node -> the data plane the topology built it for (an L4 node: nat, proxy)
    loopbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # node -> service addresses on its loopback (DSR)

    def by_role(self, role: str) -> list[str]:
        return [n for n, r in self.nodes.items() if r == role]

    def links_of(self, node: str) -> list[tuple[str, str]]:
        return [link for link in self.links if node in link]


TopologyLookup = Callable[[str, Mapping[str, Any], str], tuple[Layout, Mapping[str, Any]]]

# Which halab algorithms each real daemon can run faithfully (their spelling in the
# daemon's config is lab/net/render.py's business; a unit test keeps the two in step).
# An algorithm missing here is refused for that daemon rather than approximated.
REAL_BALANCERS = {
    "haproxy": frozenset({"roundrobin", "weighted_roundrobin", "leastconn", "source", "hash", "consistent", "random", "p2c"}),
    "nginx": frozenset({"roundrobin", "weighted_roundrobin", "weighted_leastconn", "source", "hash", "consistent", "p2c", "random"}),
    "varnish": frozenset({"roundrobin", "random", "hash", "source", "consistent"}),
}
NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,63}")  # a plain file name: no '/', no '..', no leading '.'


# ---- the settings, one dataclass per scenario section (lab.core.schema.setting) ---------
@dataclass(frozen=True)
class OriginSettings:
    port: int = setting(80, minimum=1, maximum=65535)
    latency_ms: float = setting(0.0, "added to every answer", minimum=0, maximum=60000)
    capacity: int = setting(0, "requests served at once; 0 = unlimited", minimum=0)
    workers: int = setting(0, "connections served at once, each holding a worker from its first byte to its close, as a "
                              "process-per-connection server does (Apache prefork MaxRequestWorkers; an idle kept-alive one "
                              "for 5 s, KeepAliveTimeout); the rest wait unread. 0 = no limit (an event loop)", minimum=0)
    weight: int = setting(1, "balancing weight (HAProxy: 0-256, default 1)", minimum=0, maximum=256)
    backup: bool = setting(False, "used only when every primary is down")
    log_requests: bool = setting(False, "one event per request the origin parses (what really reached it)")
    bind: tuple[str, ...] | None = setting(None, "addresses to listen on (default: the node's own; '0.0.0.0' = all)")
    cache_control: str = setting("no-store", "Cache-Control of every answer, e.g. \"max-age=5, stale-if-error=60\" "
                                             "(the default keeps every cache out of the way)")
    cache_paths: Mapping[str, str] = setting({}, "Cache-Control by path prefix, the longest matching prefix first, "
                                                 "e.g. \"/static/\" = \"max-age=60\"")
    links_from: str = setting("none", "a line in every page linking to its script at an absolute URL, built from the "
                                      "request's Host ('host') or from the X-Forwarded-Host its gateway may pass on "
                                      "('x-forwarded-host', as frameworks told to trust their proxy do); 'none': no link",
                              choices=("none", "host", "x-forwarded-host"))
    proxy_protocol: bool = setting(False, "read a PROXY protocol header (v1 or v2) when a connection starts with one: the "
                                          "client an L4 proxy names there is logged (proxied_for)")


@dataclass(frozen=True)
class BalancerSettings:
    impl: str = setting("halab", "whose balancer runs on the balancer nodes", choices=("halab", "haproxy", "nginx", "varnish"))
    algorithm: str = setting("roundrobin", "one of " + ", ".join(sorted(ALGORITHMS)) + ", or a file of your own: "
                             "\"my_p2c.py:PowerOfTwo\" (relative to the scenario file)")
    port: int = setting(80, minimum=1, maximum=65535)
    tls_port: int = setting(0, "a second listener that terminates TLS (HTTPS) with a certificate from the run's own CA "
                               "(runs/<run>/tls/ca.pem); 0 = none", minimum=0, maximum=65535)
    timeout_connect: float = setting(1.0, "seconds (HAProxy 'timeout connect')", minimum=0.01)
    timeout_server: float = setting(2.0, "seconds to wait for a response (HAProxy 'timeout server')", minimum=0.01)
    log_requests: bool = setting(True, "one event per routed request")
    syncookies: bool = setting(True, "the kernel's SYN cookies on the balancer node (net.ipv4.tcp_syncookies, Linux's default): "
                                     "off, a SYN flood fills its SYN queue and real clients' connections are dropped")
    hash_key: str = setting("uri", "for hash, consistent, maglev: uri, path, source or header:NAME")
    slowstart: float = setting(0.0, "seconds over which a recovered server's weight ramps up (HAProxy slowstart)", minimum=0)
    # halab's default is 0 so that failures stay visible; nginx retries by default
    # (proxy_next_upstream error timeout), HAProxy needs 'option redispatch'.
    retries: int = setting(0, "other servers to try after a connection error or timeout", minimum=0, maximum=10)
    maxconn: int = setting(0, "requests in flight through one balancer; more wait in a queue (HAProxy maxconn; 0 = no limit)",
                           minimum=0)
    bind: tuple[str, ...] | None = setting(None, "addresses to listen on (default: the node's own and its VIPs; '0.0.0.0' = all)")
    probe: ProbeSettings = field(default_factory=ProbeSettings)  # [balancer.health]: what a probe does
    health: HealthSettings = field(default_factory=HealthSettings)  # [balancer.health]: when probes run and count
    passive: PassiveSettings = field(default_factory=PassiveSettings)  # [balancer.passive]
    cache: CacheSettings = field(default_factory=CacheSettings)  # [balancer.cache]
    client: ClientLimits = field(default_factory=ClientLimits)  # [balancer] keys too: what a client may send


@dataclass(frozen=True)
class LoadSettings:
    rate: float = setting(20.0, "requests per second per client", minimum=0.1, maximum=20000)
    timeout: float = setting(3.0, "seconds before the client gives up", minimum=0.01)
    path: str = setting("/", "'{key}' in it is replaced by a random key below 'keys'")
    keys: int = setting(1000, "how many distinct keys '{key}' takes (hashing lessons)", minimum=1)
    clients: tuple[str, ...] | None = setting(None, "client nodes that send load (default: all)")
    max_in_flight: int = setting(512, "open-loop guard: concurrent requests per client", minimum=1)
    keepalive: bool = setting(True, "reuse connections (HTTP keep-alive); false: a new TCP connection per request, which an "
                              "L4 balancer can spread")
    target: str | None = setting(None, "a node to send load to, e.g. an origin, bypassing the balancer "
                                 "(default: the client's target in the topology, else the first balancer)")
    targets: Mapping[str, str] = setting({}, "per-client target nodes, e.g. { c1 = \"nat1\", c2 = \"tcp1\" }: several "
                                         "balancers side by side in one run (default: target)")
    proxy_retry: float = setting(5.0, "seconds a client with proxies skips one it could not reach before trying it again "
                                      "(browsers wait minutes)", minimum=0)


@dataclass(frozen=True)
class VrrpSettingsSpec:
    impl: str = setting("halab", "whose VRRP speaker runs on the gateways", choices=("halab", "keepalived"))
    advert_interval: float = setting(1.0, "seconds (RFC 5798 and keepalived default 1 s)", minimum=0.01, maximum=40.95)
    preempt: bool = setting(True, "a higher-priority backup takes the VIP back (RFC 5798 default)")
    track: bool = setting(True, "lower the priority while the local balancer cannot serve (GET /halab-ready)")
    track_weight: int = setting(60, "how much the priority drops (keepalived weight)", minimum=1, maximum=254)
    track_interval: float = setting(1.0, "seconds between readiness checks (keepalived vrrp_script interval, default 1; "
                                    "whole seconds there)", minimum=0.1, maximum=60)
    track_fall: int = setting(2, "failed checks in a row that lower the priority (keepalived fall)", minimum=1, maximum=20)
    track_rise: int = setting(1, "passed checks in a row that restore it (keepalived rise, default 1)", minimum=1, maximum=20)
    preempt_delay: float = setting(0.0, "extra seconds before preempting at startup or a lower-priority master "
                                   "(keepalived preempt_delay)", minimum=0, maximum=1000)
    priorities: Mapping[str, int] = setting({}, "per-node priority overrides, e.g. gw2 = 200")
    impls: Mapping[str, str] = setting({}, "per-node speaker, e.g. gw2 = \"keepalived\" for a mixed pair")
    backup_timer: str = setting("rfc5798", "when a BACKUP takes over after an advert, in halab's speakers: 'rfc5798', or a "
                                "class of your own, 'my_timer.py:MyTimer' (exercise 3)")
    garp_refresh: float = setting(0.0, "seconds between a MASTER's repeated gratuitous ARPs, which put right a client's "
                                  "forged or lost ARP entry (keepalived garp_master_refresh, whole seconds there; default "
                                  "0: only when it takes the VIP)", minimum=0, maximum=3600)
    accept_from: str = setting("anyone", "whose adverts the gateways take in: 'anyone' (RFC 5798: VRRPv3 has no "
                               "authentication) or 'peers', the group's own gateways only (an nftables rule on each "
                               "gateway drops the adverts of every other source, like keepalived's unicast_peer with "
                               "check_unicast_src)", choices=("anyone", "peers"))


@dataclass(frozen=True)
class BondSettings:
    impl: str = setting("auto", "kernel bonding where the kernel has it", choices=("auto", "kernel", "userspace"))
    mode: str = setting("active-backup", choices=("active-backup", "balance-rr", "balance-xor", "broadcast"))
    miimon: float = setting(0.1, "seconds between link checks (100 ms typical)", minimum=0.01, maximum=10)
    xmit_hash_policy: str = setting("layer2", "for balance-xor", choices=("layer2", "layer3+4"))


@dataclass(frozen=True)
class ReportSettings:
    bucket: float = setting(1.0, "seconds per time slot for time-based availability", minimum=0.1)
    good_ratio: float = setting(0.99, "a slot is up when this share of its requests succeeded", minimum=0, maximum=1)
    merge_gap: float = setting(1.0, "failures closer than this belong to one outage window", minimum=0)


@dataclass(frozen=True)
class Expectations:
    availability_min: float | None = setting(None, "request availability at least this", minimum=0, maximum=1)
    max_detection: float | None = setting(None, "every fault detected (health DOWN) within this many seconds", minimum=0)
    no_requests_after_detection: bool | None = setting(None, "no request routed to a DOWN server")
    max_outage: float | None = setting(None, "no outage window longer than this many seconds", minimum=0)
    reconverge_within: float | None = setting(None, "after every repair: one MASTER per VIP, every origin UP at every "
                                              "balancer and no failed request, within this many seconds", minimum=0)
    one_master_per_vip: bool | None = setting(None, "after every repair each VIP ends up with exactly one MASTER")
    max_share: Mapping[str, float] = setting({}, "origins that may serve at most this share of the successful requests, "
                                                 "e.g. { o3 = 0.17 } (a balancing algorithm's grade)")


@dataclass(frozen=True)
class ChaosSpec:
    faults: int = setting(3, "fault-and-repair pairs per chaos run", minimum=0, maximum=50)
    kinds: tuple[str, ...] = setting(tuple(CHAOS_KINDS), "what chaos may do: " + ", ".join(CHAOS_KINDS))
    min_hold: float = setting(1.0, "seconds a fault lasts, at least", minimum=0.1)
    max_hold: float = setting(4.0, "seconds a fault lasts, at most", minimum=0.1)
    settle: float = setting(5.0, "seconds between the last repair and the end of the load", minimum=1)
    reconverge_within: float | None = setting(None, "the recovery bound chaos holds each repair to (default: derived from the "
                                              "health, VRRP and client timeouts)", minimum=0)


# ---- the scenario's key tables, generated from the settings ------------------------------
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
    "cluster": Field(dict, default={}, help="run the lab over several machines (lab.core.cluster)"),
    **{role.section: Field(dict, default={}, help=role.summary) for role in OWN_SECTIONS.values() if role.section},
}
TOPOLOGY = {
    "name": Field(str, required=True, help="a name from `halab topos`"),
    "switch": Field(str, default="lxbr", choices=("lxbr", "ovsbr")),
}
BALANCER = {
    **fields_of(BalancerSettings),
    "health": Field(dict, default={}),
    "passive": Field(dict, default={}),
    "cache": Field(dict, default={}),
    **client_limits.fields(),  # what a client may send and how slowly: timeouts and limits (lab.core.client_limits)
}
PASSIVE = fields_of(PassiveSettings)
CACHE = fields_of(CacheSettings)
HEALTH = {**fields_of(ProbeSettings), **fields_of(HealthSettings)}
ORIGIN = {**fields_of(OriginSettings), "nodes": Field(dict, default={}, help="per-origin overrides, e.g. [origins.nodes.o3] latency_ms = 200")}
LOAD = fields_of(LoadSettings)
VRRP = fields_of(VrrpSettingsSpec)
BOND = fields_of(BondSettings)
CAPTURE = {"interfaces": Field(list, default=[], item=str, help="interfaces to record as pcap, e.g. 'lb1-eth0'")}
REPORT = fields_of(ReportSettings)
EXPECT = fields_of(Expectations)
CHAOS = fields_of(ChaosSpec)


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
    roles: Mapping[str, Any] = field(default_factory=dict)  # role name -> its settings, for roles with a section of their own
    cluster: ClusterSettings | None = None  # [cluster]: the servers and which node runs where; None: this machine only


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
        health = build(HealthSettings, hc)
    except ValueError as e:
        raise ConfigError(source, "balancer.health", str(e)) from None
    health = _health_rule(health, source, "balancer.health")
    if health.rule != "haproxy" and bal["impl"] != "halab":
        raise ConfigError(source, "balancer.health.rule", f"a rule of your own runs in halab's balancer only, not with impl = {bal['impl']!r}")
    passive = build(PassiveSettings, check_table(bal["passive"], PASSIVE, source, "balancer.passive"))
    cache = build(CacheSettings, check_table(bal["cache"], CACHE, source, "balancer.cache"))
    bal["algorithm"] = _algorithm(bal["algorithm"], bal["impl"], source)
    if bal["algorithm"] in ("hash", "consistent", "maglev") and not (bal["hash_key"] in ("uri", "path", "source") or bal["hash_key"].startswith("header:")):
        raise ConfigError(source, "balancer.hash_key", f"got {bal['hash_key']!r}, expected uri, path, source or header:NAME")
    if bal["impl"] != "halab":
        known = REAL_BALANCERS[bal["impl"]]
        if bal["algorithm"] not in known:
            raise ConfigError(source, "balancer.algorithm", f"{bal['algorithm']!r} has no {bal['impl']} equivalent; with impl = "
                              f"{bal['impl']!r} use one of: {', '.join(sorted(known))}")
        if bal["algorithm"] in ("hash", "consistent") and bal["hash_key"] != "uri":
            raise ConfigError(source, "balancer.hash_key", f"only 'uri' is rendered for {bal['impl']} so far")
        if cache.enabled and bal["impl"] not in ("nginx", "varnish"):
            raise ConfigError(source, "balancer.cache", f"{bal['impl']} has no cache rendered from these settings (halab, "
                              "nginx and varnish do); leave [balancer.cache] enabled = false")
        if bal["impl"] == "varnish":
            _varnish_can(bal, passive, source)
        if bal["tls_port"]:
            raise ConfigError(source, "balancer.tls_port", f"TLS termination is halab's only so far; with impl = {bal['impl']!r} "
                              "leave tls_port at 0")
    try:
        limits = client_limits.from_config(bal)
    except ValueError as e:
        raise ConfigError(source, "balancer", str(e)) from None
    if top["name"] is not None and not NAME.fullmatch(top["name"]):
        raise ConfigError(source, "name", f"got {top['name']!r}; a scenario name becomes part of the run directory's name, so it "
                          "may hold only letters, digits, '-', '_' and '.', and may not start with '.' (e.g. 'failover-basics')")
    bal["bind"] = _bind(bal["bind"], source, "balancer.bind")
    balancer = build(BalancerSettings, {**bal, "probe": build(ProbeSettings, hc), "health": health, "passive": passive, "client": limits,
                                         "cache": cache})

    origins = _origins(top["origins"], layout, source)
    load = _load(top["load"], layout, source)
    faults = parse_faults(top["faults"], top["duration"], layout, source)
    capture = check_table(top["capture"], CAPTURE, source, "capture")
    vrrp = _vrrp(top["vrrp"], layout, source)
    if top["bond"] and not layout.bonds:
        raise ConfigError(source, "bond", "this topology has no bonded interface (try bonding)")
    bond = build(BondSettings, check_table(top["bond"], BOND, source, "bond"))
    report = build(ReportSettings, check_table(top["report"], REPORT, source, "report"))
    expect = build(Expectations, check_table(top["expect"], EXPECT, source, "expect"))
    origin_nodes = layout.by_role("origin")
    for origin, share in expect.max_share.items():
        if origin not in origin_nodes:
            raise ConfigError(source, f"expect.max_share.{origin}", f"no origin named {origin!r}{suggest(origin, origin_nodes)} "
                              f"(origins: {', '.join(origin_nodes)})")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ConfigError(source, f"expect.max_share.{origin}", f"got {share!r}, expected a share between 0 and 1")
    chaos = check_table(top["chaos"], CHAOS, source, "chaos")
    for i, kind in enumerate(chaos["kinds"]):
        known = list(CHAOS_KINDS)
        if kind not in known:
            raise ConfigError(source, f"chaos.kinds[{i}]", f"got {kind!r}{suggest(kind, known)}, expected one of {', '.join(known)}")
    if chaos["min_hold"] > chaos["max_hold"]:
        raise ConfigError(source, "chaos.min_hold", f"{chaos['min_hold']} s is more than max_hold ({chaos['max_hold']} s)")
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
        chaos=build(ChaosSpec, chaos),
        roles=_role_sections(top, layout, source),
        cluster=_cluster(top["cluster"], layout, topo["switch"], capture["interfaces"], faults, source),
    )


def _cluster(table: Mapping[str, Any], layout: Layout, switch: str, capture: list[str], faults: tuple[Fault, ...],
             source: str) -> ClusterSettings | None:
    settings = check_cluster(table, layout.nodes, source)
    if settings is not None:
        check_fits(settings, layout.nodes, layout.links, switch, capture, faults, source)
    return settings


def _varnish_can(bal: dict[str, Any], passive: PassiveSettings, source: str) -> None:
    """What Varnish (without extra vmods) has no way to say: refused, not approximated."""
    if bal.get("rate_limit"):
        raise ConfigError(source, "balancer.rate_limit", "Varnish has no rate limit without the vsthrottle vmod; use impl = "
                          "\"nginx\", \"haproxy\" or \"halab\" for the rate-limit lessons")
    if bal["health"].get("kind", "http") != "http":
        raise ConfigError(source, "balancer.health.kind", "Varnish's probes speak HTTP only; leave kind = \"http\"")
    if passive.max_fails or passive.consecutive_errors:
        raise ConfigError(source, "balancer.passive", "Varnish takes servers out only by its probes (no passive ejection); "
                          "leave [balancer.passive] max_fails and consecutive_errors at 0")


def _algorithm(name: str, impl: str, source: str) -> str:
    """One of halab's algorithms, or a student's ``file.py:Class`` (made absolute and checked here, before anything is built)."""
    if not plugins.is_reference(name):
        if name not in ALGORITHMS:
            raise ConfigError(source, "balancer.algorithm", f"got {name!r}, expected one of {', '.join(sorted(ALGORITHMS))} or a "
                              f"file of your own, 'my_algorithm.py:ClassName'{suggest(name, sorted(ALGORITHMS))}")
        return name
    if impl != "halab":
        raise ConfigError(source, "balancer.algorithm", f"a file of your own runs in halab's balancer only, not with impl = {impl!r}")
    return _student_class(name, plugins.ALGORITHM, source, "balancer.algorithm")


def _student_class(name: str, interface: plugins.Interface, source: str, where: str) -> str:
    """A student's ``file.py:Class``, made absolute (relative to the scenario file) and tried before anything is built."""
    if not plugins.is_reference(name):
        raise ConfigError(source, where, f"got {name!r}, expected a file of your own and its class, 'my_file.py:ClassName'")
    resolved = plugins.resolve(name, Path(source).parent)
    try:
        plugins.check(resolved, interface)
    except plugins.PluginError as e:
        raise ConfigError(source, where, str(e)) from None
    return resolved


def _health_rule(health: HealthSettings, source: str, where: str) -> HealthSettings:
    """``rule``: HAProxy's, or a student's class (exercise 1), resolved and tried here."""
    if health.rule == "haproxy":
        return health
    return dataclasses.replace(health, rule=_student_class(health.rule, plugins.HEALTH_RULE, source, f"{where}.rule"))


def _role_sections(top: Mapping[str, Any], layout: Layout, source: str) -> dict[str, Any]:
    """Each registered role's own section, checked against its settings dataclass (lab.core.roles).

    A section for a role the topology has no nodes for is a mistake, and so
    is a per-node ``impls`` entry naming a node that is not one of them.
    """
    out = {}
    for name, role in OWN_SECTIONS.items():
        cls = resolve(role.settings)  # type: ignore[arg-type]
        table = dict(top[role.section])  # type: ignore[index]
        nested = {}
        for f in dataclasses.fields(cls):  # a nested settings dataclass is a sub-table: [l4.health]
            if "setting" not in f.metadata and f.default_factory is not dataclasses.MISSING:
                sub, where = table.pop(f.name, {}), f"{role.section}.{f.name}"
                if not isinstance(sub, Mapping):
                    raise ConfigError(source, where, f"expected a table [{where}], got {sub!r}")
                kind = type(f.default_factory())
                try:
                    nested[f.name] = build(kind, check_table(dict(sub), fields_of(kind), source, where))
                except ValueError as e:
                    raise ConfigError(source, where, str(e)) from None
                if isinstance(nested[f.name], HealthSettings):
                    nested[f.name] = _health_rule(nested[f.name], source, where)
        values = {**check_table(table, fields_of(cls), source, role.section), **nested}  # type: ignore[arg-type]
        nodes = layout.by_role(role.node_role) if role.node_role else None
        if table and nodes == []:
            raise ConfigError(source, role.section, f"this topology has no {role.node_role} nodes for [{role.section}] to set up")
        for node, impl in values.get("impls", {}).items():
            if nodes is not None and node not in nodes:
                raise ConfigError(source, f"{role.section}.impls.{node}", f"no {role.node_role} named {node!r}{suggest(node, nodes)}")
            if impl not in ("halab", *role.real):
                raise ConfigError(source, f"{role.section}.impls.{node}", f"got {impl!r}, expected one of halab, {', '.join(role.real)}")
        try:
            out[name] = build(cls, values)
            if hasattr(out[name], "check_layout"):  # settings whose meaning depends on the nodes they run on
                out[name].check_layout(layout)
        except ValueError as e:
            raise ConfigError(source, role.section, str(e)) from None
    return out


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
    out = {name: build(OriginSettings, base) for name in names}
    per_node = fields_of(OriginSettings)
    for node, override in base["nodes"].items():
        if node not in names:
            raise ConfigError(source, f"origins.nodes.{node}", f"no origin named {node!r}{suggest(node, names)} (origins: {', '.join(names)})")
        # a node's keys default to the [origins] values, not to the built-in defaults
        values = check_table(override, {k: Field(f.kind, base[k], False, f.minimum, f.maximum, item=f.item) for k, f in per_node.items()},
                             source, f"origins.nodes.{node}")
        if "bind" in override:
            values["bind"] = _bind(override["bind"], source, f"origins.nodes.{node}.bind")
        out[node] = build(OriginSettings, values)
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
    if values["backup_timer"] != "rfc5798":
        if all(values["impls"].get(node, values["impl"]) != "halab" for node in layout.vrrp):
            raise ConfigError(source, "vrrp.backup_timer", "a timer of your own runs in halab's speaker only, and every gateway "
                              "here runs keepalived")
        values["backup_timer"] = _student_class(values["backup_timer"], plugins.BACKUP_TIMER, source, "vrrp.backup_timer")
    return build(VrrpSettingsSpec, values)


def _load(table: Mapping[str, Any], layout: Layout, source: str) -> LoadSettings:
    values = check_table(table, LOAD, source, "load")
    all_clients = layout.by_role("client")
    clients = values["clients"] if values["clients"] is not None else all_clients
    for i, name in enumerate(clients):
        if name not in all_clients:
            raise ConfigError(source, f"load.clients[{i}]", f"no client named {name!r}{suggest(name, all_clients)} (clients: {', '.join(all_clients)})")
    if not clients:
        raise ConfigError(source, "load.clients", "needs at least one client")
    serving = [n for n, r in layout.nodes.items() if r in SERVING_ROLES]
    aims = [("load.target", values["target"])] + [(f"load.targets.{c}", t) for c, t in values["targets"].items()]
    for where, target in aims:
        if target is None:
            continue
        if not isinstance(target, str) or target not in layout.nodes:
            raise ConfigError(source, where, f"no node named {target!r}{suggest(str(target), serving)} (nodes that serve "
                              f"clients: {', '.join(serving)})")
        if target not in serving:
            raise ConfigError(source, where, f"{target!r} is a {layout.nodes[target]} and serves no clients "
                              f"(nodes that do: {', '.join(serving)})")
    for client in values["targets"]:
        if client not in clients:
            raise ConfigError(source, f"load.targets.{client}", f"no client named {client!r} sends load{suggest(client, list(clients))} "
                              f"(clients: {', '.join(clients)})")
    values["clients"] = list(clients)
    return build(LoadSettings, values)
