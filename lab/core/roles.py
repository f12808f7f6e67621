"""The role registry: every kind of service halab runs, declared once.

A role says which process runs it (``module``, started as ``python -m``),
when it starts (``tier``: a tier is ready before the next one starts, so a
balancer never probes origins that are not listening yet), where it runs
(the topology role of its nodes, or a planner that finds them), the
scenario section holding its settings, the real daemons that can take its
place (``impl = "haproxy"`` runs a wrapper module instead), and the event
kinds it writes (``lab/event_kinds.py``).

Adding a role is one service module, one planner (a function that turns a
scenario into ``ServiceSpec`` s, referenced here by name so this module
stays free of I/O) and one entry below; the lab, the scenario checks, the
fault injector and chaos read this table instead of lists of names.
(IPMininet's ``addDaemon`` is the same idea: the network knows daemons
only through what each one declares.)
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

RUNTIME_EVENTS = ("service_started", "service_ready", "service_stopped", "service_failed")  # every service writes these


@dataclass(frozen=True)
class Role:
    name: str  # the service's name: event file NODE-NAME.jsonl, control socket, ServiceSpec.service
    module: str  # halab's implementation
    tier: int  # start order
    plan: str  # "module:function" making its ServiceSpecs from a scenario (lab.net.roles)
    summary: str
    node_role: str | None = None  # every node of this topology role runs it (None: the planner places it)
    section: str | None = None  # the scenario table holding its settings
    real: Mapping[str, str] = field(default_factory=dict)  # impl -> wrapper module that runs that daemon instead
    events: tuple[str, ...] = ()  # what it writes besides RUNTIME_EVENTS
    port: str | None = None  # "module:function" (scenario, node) -> the port clients can aim at, for roles that serve them
    with_load: bool = False  # started with the load and ends with it, not a lasting service of the lab
    settings: str | None = None  # "module:Class": a settings dataclass for its own section (scenario.roles[name])

    def module_for(self, impl: str = "halab") -> str:
        return self.real.get(impl, self.module)


_HTTP = ("request_routed", "request_retried", "request_failed", "request_aborted", "request_rejected", "health_checked",
         "health_changed", "server_ejected", "server_returned", "server_changed", "balancer_load")
_DECLARED = (
    Role("team", "lab.services.team", 0, "lab.net.roles:plan_bonds", "bond/team agent of a multi-homed node",
         section="bond", events=("member_link", "bond_failover", "garp_sent")),
    Role("origin", "lab.services.origin", 1, "lab.net.roles:plan_origins", "the origin web server", node_role="origin",
         section="origins", events=("request_parsed", "request_unparsed", "origin_changed"), port="lab.net.roles:origin_port"),
    Role("balancer", "lab.services.balancer", 2, "lab.net.roles:plan_balancers", "the L7 load balancer (gateway)",
         node_role="balancer", section="balancer",
         real={"haproxy": "lab.services.realbalancer", "nginx": "lab.services.realbalancer", "varnish": "lab.services.varnish"},
         events=_HTTP + ("cache_result", "daemon_said", "daemon_exited"), port="lab.net.roles:balancer_port"),
    Role("vrrp", "lab.services.vrrp", 3, "lab.net.roles:plan_vrrp", "VRRP speaker holding a virtual IP", section="vrrp",
         real={"keepalived": "lab.services.keepalived"},
         events=("vrrp_state_changed", "priority_changed", "vrrp_heartbeat", "vrrp_master_seen", "vrrp_bad_advert",
                 "advert_send_failed", "advert_send_recovered", "vip_taken", "vip_released", "vip_error", "garp_sent",
                 "garp_failed", "daemon_said", "daemon_exited")),
    Role("proxy", "lab.services.forward_proxy", 2, "lab.services.forward_proxy:plan", "the forward proxy clients choose "
         "(access rules, CONNECT tunnels, Via)", node_role="proxy", section="proxy", real={"squid": "lab.services.squid"},
         events=("proxy_request", "cache_result", "request_failed", "request_retried", "request_aborted", "request_rejected",
                 "daemon_said", "daemon_exited"), settings="lab.core.forward:ProxySettings"),
    Role("l4", "lab.services.l4", 2, "lab.services.l4:plan", "the L4 load balancer: kernel NAT (nftables) or a TCP relay",
         node_role="l4", section="l4", real={"haproxy": "lab.services.realbalancer"},
         events=("l4_table", "l4_flows", "flows_flushed", "connection_routed", "connection_retried", "connection_failed",
                 "health_checked", "health_changed", "server_changed", "daemon_said", "daemon_exited"),
         port="lab.services.l4:port", settings="lab.core.l4:L4Settings"),
    Role("echo", "lab.services.echo", 1, "lab.services.echo:plan", "TCP echo server (RFC 862) on the origins, for L4 lessons",
         section="echo", settings="lab.services.echo:EchoSettings", port="lab.services.echo:port"),
    Role("loadgen", "lab.services.loadgen", 4, "lab.net.roles:plan_load", "open-loop HTTP client", node_role="client",
         section="load", events=("load_started", "load_finished", "request_finished", "connection_lost", "proxy_failover"), with_load=True),
)
ROLES: dict[str, Role] = {r.name: r for r in _DECLARED}
TIERS = tuple(r.name for r in sorted(_DECLARED, key=lambda r: r.tier))
# topology roles whose nodes run lasting services: what crash, pause and poweroff can act on
SERVICE_ROLES = tuple(r.node_role for r in sorted(_DECLARED, key=lambda r: r.tier) if r.node_role and not r.with_load)
SERVING_ROLES = tuple(r.node_role for r in _DECLARED if r.node_role and r.port)  # a client can aim load at these nodes
OWN_SECTIONS = {r.name: r for r in _DECLARED if r.settings}  # roles whose scenario section is read generically


def resolve(ref: str) -> Callable[..., Any]:
    """A registry reference 'package.module:name' -> the object (imported when first needed)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
