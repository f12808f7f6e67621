"""Every kind of event halab writes, with its fields and their types: declared once.

A field spec reads ``name:type``; ``name?:type`` may be left out;
``type|null`` may be JSON null. Types: str, int, float (an int is a
float too), bool, list, dict. ``t``, ``node``, ``service`` and ``kind`` are
in every event. Old run directories keep rebuilding because a field is only
ever added as optional.

The events of real daemons (HAProxy, nginx, keepalived) are translated by
their wrappers into these same kinds, so the report reads one vocabulary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "list": (list,),
                                       "dict": (dict,), "null": (type(None),)}


@dataclass(frozen=True)
class FieldSpec:
    types: tuple[str, ...]

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) and "bool" not in self.types:
            return False  # JSON true is not a number
        return any(isinstance(value, _TYPES[t]) for t in self.types)

    def __str__(self) -> str:
        return "|".join(self.types)


@dataclass(frozen=True)
class Kind:
    name: str
    doc: str
    fields: Mapping[str, FieldSpec]
    required: frozenset[str]


def _kind(name: str, doc: str, spec: str) -> Kind:
    fields, required = {}, set()
    for item in spec.split():
        field, _, types = item.partition(":")
        optional = field.endswith("?")
        field = field.rstrip("?")
        assert all(t in _TYPES for t in types.split("|")), item
        fields[field] = FieldSpec(tuple(types.split("|")))
        if not optional:
            required.add(field)
    return Kind(name, doc, fields, frozenset(required))


COMMON = {name: FieldSpec((t,)) for name, t in (("t", "float"), ("node", "str"), ("service", "str"), ("kind", "str"))}

_DECLARED = [
    # ---- the lab and the runner ----
    ("lab_built", "the network exists: nodes with roles, addresses (and in a cluster lab, the server of each node)",
     "topology:str switch:str nodes:dict addresses:dict interfaces?:dict servers?:dict"),
    ("run_started", "the load starts at start_at (ready_lead: seconds to spare once every client was ready)",
     "scenario:str start_at:float duration:float ready_lead?:float"),
    ("run_finished", "the run ended; what was still broken", "scenario:str broken_at_end:list"),
    ("fault_applied", "a fault was injected (lab.core.faults)", "action:str target:str affects:list note:str "
     "killed?:list stopped?:list interfaces?:list rule?:str groups?:list pid?:int port?:int status?:int"),
    ("fault_reverted", "a repair was made", "action:str target:str affects:list note:str "
     "started?:list continued?:list interfaces?:list routes?:list"),
    ("service_exited", "a service process ended by itself (not by a fault)", "target:str service:str key:str code:int|null log:str"),
    # ---- every service (lab.services.runtime) ----
    ("service_started", "a service process began", "pid:int loop:str"),
    ("service_ready", "a service accepts traffic now (the lab waits for it)", "pid:int port?:int bind?:list servers?:list "
     "algorithm?:str impl?:str|null daemon_pid?:int vip?:str priority?:int interface?:str master_down_interval?:float "
     "target?:str rate?:float mode?:str|null members?:list name?:str tls_port?:int|null health_rule?:str backup_timer?:str"),
    ("service_stopped", "a service process ended cleanly", "pid:int"),
    ("service_failed", "a supervised loop died: the service exits", "task:str error:str traceback:str"),
    ("daemon_said", "a line of a real daemon that is not news", "line:str"),
    ("daemon_exited", "the real daemon behind a wrapper exited by itself", "code:int|null"),
    # ---- the load generator ----
    ("load_started", "a client starts sending", "rate:float duration:float target:str requests:int proxies?:list|null"),
    ("load_finished", "a client has sent everything", "sent:int ok:int failed:int"),
    ("request_finished", "one request as the client saw it", "id:str latency:float status:int|null ok:bool error:str|null "
     "detail:str|null service_time?:float served_by?:str|null upstream?:str|null retries?:int path?:str gateway?:str|null "
     "resent?:bool proxy?:str|null"),
    ("proxy_failover", "a client could not reach a proxy on its list and moved on to the next", "proxy:str next:str error:str"),
    ("connection_lost", "a kept-alive connection was found dead; the request is resent on a new one", "id:str error:str"),
    # ---- the balancer (halab's, HAProxy, nginx) ----
    ("request_routed", "the balancer sent a request to a server", "id:str|null server:str client?:str method?:str path?:str attempt?:int"),
    ("request_retried", "an attempt failed and another server is tried", "id:str|null server:str error:str detail:str"),
    ("request_failed", "the balancer answered a request with an error", "id:str|null server:str|null status:int error:str "
     "detail?:str"),
    ("request_aborted", "the client went away before the answer", "id:str|null server:str|null reason:str"),
    ("request_rejected", "a request refused before routing (malformed, too big, too slow, smuggling)",
     "client:str status:int reason:str error:str"),
    ("health_checked", "one active health probe", "server:str result:str detail:str label:str took?:float"),
    ("health_changed", "a server went UP or DOWN", "server:str before:str after:str reason:str label:str"),
    ("server_ejected", "passive health: a server taken out for errors", "server:str rule:str until?:float"),
    ("server_returned", "passive health: an ejected server is back", "server:str"),
    ("server_changed", "an operator changed a server (weight, drain, disabled)", "server:str weight?:int drain?:bool disabled?:bool"),
    ("balancer_load", "requests per second and CPU share, once a second", "rps:float cpu:float"),
    # ---- the L4 balancer (kernel NAT, halab's TCP relay, HAProxy mode tcp) ----
    ("l4_table", "the kernel's slot table was replaced: slots per backend", "slots:dict size:int reason:str took:float moved?:float|null"),
    ("l4_flows", "established flows conntrack pins to each backend (when it changes, at most once a second)", "flows:dict total:int"),
    ("flows_flushed", "the flows (conntrack entries, relayed sessions) of a backend that went DOWN were cut (flush_on_down)",
     "server:str flows:int"),
    ("connection_routed", "an L4 proxy connected a client's connection to a backend", "client:str server:str attempt:int"),
    ("connection_retried", "an L4 proxy's connect to a backend failed (another is tried while retries are left)", "client:str server:str error:str"),
    ("connection_failed", "an L4 proxy could not connect a client anywhere (it gets a reset)", "client:str tried:list error:str"),
    # ---- caches ----
    ("cache_result", "what a cache did with one request (X-Cache, and Squid's result code)", "id:str|null key:str result:str "
     "squid:str status:int age:int|null why:str"),
    # ---- the forward proxy (halab's, Squid) ----
    ("proxy_request", "one request through a forward proxy, as a line of Squid's access.log", "client:str method:str url:str "
     "status:int result:str duration:float user?:str|null server?:str|null error?:str|null rule?:str|null up?:int down?:int "
     "reason?:str id?:str|null"),
    # ---- origins ----
    ("request_parsed", "what really reached an origin (log_requests)", "method:str target:str id:str|null via:str|null "
     "forwarded_for:str|null body:int host?:str|null headers?:list peer?:str proxied_for?:str|null"),
    ("request_unparsed", "an origin refused a request it could not parse", "status:int error:str"),
    ("origin_changed", "an origin's added latency or its forced error status was changed", "latency_ms:float fail_status?:int"),
    # ---- VRRP (halab's speaker, keepalived) ----
    ("vrrp_state_changed", "INIT/BACKUP/MASTER transitions", "vrid:int before:str after:str reason:str vip:str priority?:int"),
    ("priority_changed", "tracking raised or lowered the priority", "priority:int reason:str startup?:bool vrid?:int"),
    ("vrrp_heartbeat", "the speaker's state, once a second", "vip:str state:str master:str priority:int last_advert_age:float|null"),
    ("vrrp_master_seen", "a new master's adverts were heard", "source:str priority:int interval:float"),
    ("vrrp_bad_advert", "an advert was dropped (checksum, version, vrid...)", "error:str"),
    ("advert_send_failed", "an advert could not be sent (the link is down)", "error:str errno:int state:str"),
    ("advert_send_recovered", "adverts go out again", "lost:int state:str"),
    ("vip_taken", "the VIP was added to the interface", "vip:str reason:str"),
    ("vip_released", "the VIP was removed", "vip:str reason:str"),
    ("vip_error", "adding or removing the VIP failed", "verb:str error:str"),
    ("garp_sent", "gratuitous ARPs announced an address", "count:int mac:str vip?:str address?:str member?:str"),
    ("vrrp_filtered", "at the end of a run: the adverts a gateway's nftables rule dropped ([vrrp] accept_from = \"peers\")",
     "gateway:str allowed:list dropped:int"),
    ("garp_failed", "a gratuitous ARP could not be sent", "vip:str error:str errno:int"),
    # ---- bonding ----
    ("bond_failover", "the bond's active member changed", "before:str|null after:str|null reason:str"),
    ("member_link", "a bond member's link went up or down", "member:str up:bool"),
]
KINDS: dict[str, Kind] = {name: _kind(name, doc, spec) for name, doc, spec in _DECLARED}
