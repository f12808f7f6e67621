"""Which service runs on which host, with which settings (pure: no Mininet).

The topology gives each host a role and an address; the scenario gives the
settings. Each role of the registry (``lab.core.roles``) names a planner
here that joins the two into one ``ServiceSpec`` per process, whose
``config`` is the JSON the service reads. Kept free of I/O so a test can
check, without root, that every origin is a backend of the balancer and
every client aims at it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from lab.core.roles import ROLES, TIERS, resolve
from lab.core.scenario import BalancerSettings, OriginSettings, Scenario
from lab.core.schema import as_config
from lab.events import event_path

CONTROL_DIR = "/run/halab/ctl"  # short, fixed: a Unix socket path must stay under 108 bytes


@dataclass
class ServiceSpec:
    node: str
    service: str
    config: dict[str, Any] = field(default_factory=dict)
    instance: str = ""  # tells apart two services of one kind on one node

    @property
    def key(self) -> str:
        return f"{self.node}-{self.service}" + (f"-{self.instance}" if self.instance else "")

    def another(self, instance: str, **changes: Any) -> "ServiceSpec":
        """A second copy on the same node, with its own event file, socket and settings."""
        key = f"{self.node}-{self.service}-{instance}"
        config = dict(self.config, events=str(Path(self.config["events"]).with_name(f"{key}.jsonl")),
                      control=f"{CONTROL_DIR}/{key}.sock", **changes)
        return ServiceSpec(self.node, self.service, config, instance)

    @property
    def module(self) -> str:
        return ROLES[self.service].module_for(self.config.get("impl", "halab"))




def base_config(node: str, service: str, run_dir: Path) -> dict[str, Any]:
    """What every service's config holds: who it is, where its events and its control socket go."""
    return {"node": node, "service": service, "events": str(event_path(run_dir, node, service)),
            "control": f"{CONTROL_DIR}/{node}-{service}.sock"}


def plan_services(scenario: Scenario, addresses: Mapping[str, str], run_dir: Path) -> list[ServiceSpec]:
    """Every lasting service of the lab, tier by tier (the load comes from ``plan_load``, when it starts)."""
    specs = []
    for name in TIERS:
        if not ROLES[name].with_load:
            specs += resolve(ROLES[name].plan)(scenario, addresses, run_dir)
    return specs


def plan_origins(scenario: Scenario, addresses: Mapping[str, str], run_dir: Path) -> list[ServiceSpec]:
    specs = []
    for node, settings in scenario.origins.items():
        cfg = base_config(node, "origin", run_dir)
        cfg.update(as_config(settings), bind=list(settings.bind or own_addresses(scenario, addresses, node)))  # weight, backup: the balancer's
        specs.append(ServiceSpec(node, "origin", cfg))
    return specs


def plan_balancers(scenario: Scenario, addresses: Mapping[str, str], run_dir: Path) -> list[ServiceSpec]:
    layout, b = scenario.layout, scenario.balancer
    specs = []
    servers = [server_entry(n, addresses[n], scenario.origins[n]) for n in layout.by_role("origin")]
    for node in layout.by_role("balancer"):
        cfg = base_config(node, "balancer", run_dir)
        cfg.update(balancer_config(b, servers, scenario.seed), bind=list(b.bind or own_addresses(scenario, addresses, node)))
        if b.impl != "halab":
            cfg.update(_real_balancer(scenario, servers, node, run_dir, cfg["bind"]))
        if b.tls_port:
            cfg.update(tls_files(run_dir, node, cfg["bind"]))
        specs.append(ServiceSpec(node, "balancer", cfg))
    return specs


def tls_files(run_dir: Path, node: str, bind: list[str]) -> dict[str, str]:
    """A certificate from the run's CA for a node's TLS listener: its name and every address it listens on."""
    from lab.net import tls

    cert, key = tls.certificate(run_dir, node, [node, "localhost", *bind])
    return {"tls_cert": cert, "tls_key": key}


def server_entry(name: str, address: str, origin: OriginSettings) -> dict[str, Any]:
    """One backend in a balancer's config: where it is and how the balancer treats it."""
    return {"name": name, "address": address, "port": origin.port, "weight": origin.weight, "backup": origin.backup}


def balancer_config(b: BalancerSettings, servers: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    """The JSON a balancer reads: its settings as the scenario's tables spell them, its servers and its seed."""
    cfg = as_config(b)
    cfg.update(cfg.pop("client"))  # the client limits are [balancer] keys (lab.core.client_limits)
    cfg["health"] = {**cfg.pop("probe"), **cfg["health"]}  # one [balancer.health] table, as in the scenario
    return {**cfg, "servers": servers, "seed": seed}


def origin_port(scenario: Scenario, node: str) -> int:
    return scenario.origins[node].port


def balancer_port(scenario: Scenario, node: str) -> int:
    return scenario.balancer.port


def own_addresses(scenario: Scenario, addresses: Mapping[str, str], node: str) -> list[str]:
    """Where a service listens by default: its node's address, its VIPs (bound ahead with IP_FREEBIND) and loopback.

    Not the wildcard: a service answers only where the lab's plan says it
    lives (with a DSR balancer in front, the service address on its loopback). Loopback stays, because VRRP tracking (halab's speaker and
    keepalived's track script) checks the local balancer on 127.0.0.1.
    """
    vips = [group["vip"] for group in scenario.layout.vrrp.get(node, ())]
    return [addresses[node], *vips, *scenario.layout.loopbacks.get(node, ()), "127.0.0.1"]


def plan_bonds(scenario: Scenario, addresses: Mapping[str, str], run_dir: Path) -> list[ServiceSpec]:
    """The bond agent of each multi-homed node (``bond.impl`` must be resolved: kernel or userspace)."""
    b = scenario.bond
    specs = []
    for node, bond in scenario.layout.bonds.items():
        cfg = base_config(node, "team", run_dir)
        cfg.update(as_config(b), name="bond0", members=list(bond["members"]), address=bond["address"])
        specs.append(ServiceSpec(node, "team", cfg))
    return specs


def plan_vrrp(scenario: Scenario, addresses: Mapping[str, str], run_dir: Path) -> list[ServiceSpec]:
    """One speaker per VRRP group a node takes part in (active/active: two per gateway)."""
    layout, v = scenario.layout, scenario.vrrp
    specs = []
    for node, groups in layout.vrrp.items():
        for group in groups:
            instance = str(group["vrid"]) if len(groups) > 1 else ""
            spec = ServiceSpec(node, "vrrp", base_config(node, "vrrp", run_dir), instance)
            if instance:
                spec = spec.another(instance)
            impl = v.impls.get(node, v.impl)
            # the [vrrp] settings as the dataclass spells them, then this node's part in the group
            spec.config.update(as_config(v), impl=impl, interface=f"{node}-eth0", address=layout.addresses[node], vip=group["vip"],
                               prefix=24, vrid=group["vrid"], priority=v.priorities.get(node, group["priority"]),
                               track_port=tracked_port(scenario, node) if v.track else 0)
            if impl == "keepalived":
                from lab.net.render import keepalived_config

                c = spec.config
                spec.config.update(conf_path=str(run_dir / "conf" / f"{spec.key}-keepalived.conf"),
                                   conf_text=keepalived_config(node, c["interface"], c["vip"], c["vrid"], c["priority"],
                                                               c["advert_interval"], c["preempt"], c["track_port"], c["track_weight"],
                                                               v.track_interval, v.track_fall, v.track_rise, v.preempt_delay,
                                                               v.garp_refresh))
            specs.append(spec)
    return specs


def tracked_port(scenario: Scenario, node: str) -> int:
    """The port of the local service a VRRP speaker's tracking asks ``GET /halab-ready``: the gateway's, or a proxy's."""
    if scenario.layout.nodes[node] == "proxy":
        return int(scenario.roles["proxy"].port)
    return scenario.balancer.port


def _real_balancer(scenario: Scenario, servers: list[dict[str, Any]], node: str, run_dir: Path, bind: list[str]) -> dict[str, Any]:
    from lab.net.render import haproxy_config, nginx_config

    b = scenario.balancer
    conf_dir = run_dir / "conf"
    if b.impl == "varnish":
        return varnish_config(scenario, servers, node, run_dir)
    if b.impl == "haproxy":
        text = haproxy_config(b, servers, node, str(conf_dir / f"{node}-haproxy.pid"), bind)
        path = conf_dir / f"{node}-haproxy.cfg"
    else:
        vips = [group["vip"] for group in scenario.layout.vrrp.get(node, ())]
        # nginx's workers drop root: its cache lives beside the control sockets, which the lab removes (also after a crash)
        cache_dir = f"{CONTROL_DIR}/{node}-nginx-cache" if b.cache.enabled else None
        text = nginx_config(b, servers, node, str(conf_dir / f"{node}-nginx.pid"), str(conf_dir), bind, vips, cache_dir)
        path = conf_dir / f"{node}-nginx.conf"
    return {"impl": b.impl, "conf_text": text, "conf_path": str(path)}


def varnish_config(scenario: Scenario, servers: list[dict[str, Any]], node: str, run_dir: Path) -> dict[str, Any]:
    """varnishd's VCL, parameters and storage from [balancer] (``lab.net.render_varnish``); its shared memory log
    lives beside the control sockets, which the lab removes (also after a crash)."""
    from lab.net import render_varnish

    b = scenario.balancer
    return {"impl": "varnish", "conf_text": render_varnish.vcl(b, servers, node), "conf_path": str(run_dir / "conf" / f"{node}-varnish.vcl"),
            "params": render_varnish.parameters(b), "storage": render_varnish.storage(b), "workdir": f"{CONTROL_DIR}/{node}-varnish",
            "listen_all": bool(scenario.layout.vrrp.get(node))}


def plan_load(scenario: Scenario, addresses: Mapping[str, str], run_dir: Path, start_at: float) -> list[ServiceSpec]:
    """One load generator per client, aimed at its ``[load] targets`` entry, else ``[load] target``, else the
    client's own target in the topology (a VIP), else the first balancer."""
    layout, load = scenario.layout, scenario.load
    balancers = layout.by_role("balancer")
    aimless = [n for n in load.clients if n not in layout.targets and n not in load.targets]
    if aimless and not balancers and load.target is None:
        raise ValueError(f"topology {scenario.topology!r} has no balancer for {', '.join(aimless)} to aim at; name a node "
                         "with [load] target")
    specs = []
    for node in load.clients:
        aim = load.targets.get(node, load.target)
        if aim is not None:
            target, port = addresses[aim], serving_port(scenario, aim)
        else:
            target = layout.targets.get(node) or addresses[balancers[0]]
            owner = next((n for n, a in addresses.items() if a == target and n in layout.nodes), None)
            # a node's own address: the port of the service there (an L4 balancer's); a VIP: the gateways' port
            port = serving_port(scenario, owner) if owner is not None else scenario.balancer.port
        cfg = base_config(node, "loadgen", run_dir)
        cfg.update(target=target, port=port, rate=load.rate, duration=scenario.duration, start_at=start_at, timeout=load.timeout,
                   path=load.path, keys=load.keys, max_in_flight=load.max_in_flight, keepalive=load.keepalive, seed=f"{scenario.seed}-{node}",
                   proxy_retry=load.proxy_retry, proxies=proxy_routes(scenario, addresses, node))
        specs.append(ServiceSpec(node, "loadgen", cfg))
    return specs


def proxy_routes(scenario: Scenario, addresses: Mapping[str, str], node: str) -> list[dict[str, Any]]:
    """The proxies a client uses, in order, as its load generator reads them (none: it goes direct)."""
    routes: list[dict[str, Any]] = []
    for name in scenario.layout.proxies.get(node, ()):
        if name == "DIRECT":
            routes.append({"name": name})
        else:  # a proxy node, or an address (a VIP the proxies share)
            routes.append({"name": name, "address": addresses.get(name, name), "port": scenario.roles["proxy"].port})
    return routes


def serving_port(scenario: Scenario, node: str) -> int:
    """The port a client reaches ``node``'s service on, from the role that runs there."""
    role = next(r for r in ROLES.values() if r.node_role == scenario.layout.nodes[node] and r.port)
    return int(resolve(role.port)(scenario, node))  # type: ignore[arg-type]
