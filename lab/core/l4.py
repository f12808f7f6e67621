"""The L4 balancer's pure part: its settings, its slot table, and the nftables ruleset that holds the table.

An L4 balancer decides once per *connection* (on the SYN), never per
request: it cannot see a request at all. halab's L4 balancer has three data
planes, chosen by ``mode`` (and ``impl = "ipvs"`` runs the first two on the
kernel's IPVS instead of nftables, where the kernel has it):

- ``nat``: the kernel does the work. A new flow to the balancer's address
  looks a slot up in an nftables map (``numgen inc`` for round robin,
  ``numgen random``, ``jhash ip saddr`` for source affinity and Maglev) and
  is DNATed to that backend; conntrack pins every later packet of the flow
  to the same backend, so the origin sees the client's own address and port
  (one TCP connection end to end). The origins must route their answers
  back through the balancer (it is their default gateway).
- ``dsr``: direct server return. Only the destination MAC is rewritten,
  at the front interface's ingress; the origins hold the service address on
  their loopback and answer the client directly. No state: every packet is
  hashed again (``dsr_ruleset``).
- ``proxy``: halab's userspace relay (or HAProxy ``mode tcp``): two TCP
  connections, the origin sees the balancer's address (unless the PROXY
  protocol header tells it who the client was).

The control plane is the same for all: active health checks, and on every
change the table is rebuilt from the same algorithm code the L7 balancer
runs (``Algorithm.table``) and replaced in one nftables transaction (the
kernel never sees half a table). Nothing here touches a socket or the
kernel: ``lab.services.l4`` does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from lab.core.algorithms import Server, make_algorithm
from lab.core.algorithms.base import TableNotPossible
from lab.core.health import HealthSettings, ProbeSettings
from lab.core.schema import setting

TABLE = "halab_l4"  # the nftables table the balancer owns in its node's namespace (replaced whole on every change)
MODES = ("nat", "dsr", "proxy")
# DSR has no connection table: every packet of a flow is looked up again at ingress, so only a hash of what
# stays the same for the whole flow can choose (numgen would send each packet somewhere else)
DSR_ALGORITHMS = ("source", "hash", "maglev")
# how the kernel picks a slot for a new flow, per algorithm (a table lookup; the table comes from Algorithm.table)
LOOKUPS: Mapping[str, str] = {
    "roundrobin": "numgen inc",  # each new flow the next slot
    "weighted_roundrobin": "numgen inc",  # the slots hold one period of the smooth weighted order
    "random": "numgen random",
    "source": "jhash ip saddr",  # one client, one backend, while the set holds (IPVS sh)
    "hash": "jhash ip saddr . tcp sport",  # the flow itself: every connection hashed anew
    "maglev": "jhash ip saddr",  # consistent: few clients move when a backend goes (IPVS mh)
}
# jhash without a seed gets a random one each time its rule is made, and the whole table is remade on every
# change: every client would be rehashed, and Maglev would move as many clients as mod-N. A fixed seed keeps a
# client's hash the same across changes, so only the table decides who moves (measured: without it, a
# client's origin changed after a backend went and came back even with the same three slots).
JHASH_SEED = 0x68616C61
MAGLEV_SLOTS = 4093  # IPVS mh's table size (prime); Maglev wants it above 100 x the backends
HAPROXY_TCP = ("roundrobin", "weighted_roundrobin", "leastconn", "source", "random", "p2c")  # lab.net.render spells them
# halab's algorithms as IPVS schedulers (ipvsadm -s); IPVS has no random, no p2c and no per-port hash
IPVS_SCHEDULERS = {"roundrobin": "rr", "weighted_roundrobin": "wrr", "leastconn": "lc", "weighted_leastconn": "wlc",
                   "source": "sh", "maglev": "mh"}
PROXY_ALGORITHMS = ("roundrobin", "weighted_roundrobin", "random", "source", "hash", "maglev", "leastconn", "weighted_leastconn",
                    "p2c")  # the userspace relay decides per connection in Python: live state is fine there


@dataclass(frozen=True)
class L4Check(HealthSettings, ProbeSettings):
    """``[l4.health]``: an L4 balancer checks with a TCP connect by default (keepalived TCP_CHECK, IPVS's usual checker)."""

    kind: str = setting("tcp", "tcp: a connect; http: GET path; icmp: a ping", choices=("http", "tcp", "icmp"))


@dataclass(frozen=True)
class L4Settings:
    impl: str = setting("halab", "halab: nftables (nat, dsr) or halab's TCP relay (proxy); haproxy: HAProxy mode tcp on the "
                        "nodes in proxy mode; ipvs: the kernel's IPVS through ipvsadm on the nodes in nat or dsr mode "
                        "(where the kernel has it; halab doctor says)", choices=("halab", "haproxy", "ipvs"))
    mode: str = setting("", "nat: the kernel rewrites addresses (one TCP connection); dsr: the kernel rewrites only the MAC "
                        "and the origins answer the client directly; proxy: a TCP relay (two connections). "
                        "Default: what the topology built the node for", choices=("", *MODES))
    port: int = setting(80, "the TCP port clients connect to (the backends' own port is the origins')", minimum=1, maximum=65535)
    algorithm: str = setting("roundrobin", "how a new connection picks a backend (nat: only the table-driven ones)",
                             choices=PROXY_ALGORITHMS)
    table_size: int = setting(0, "slots in the kernel's table (0: the algorithm's own: one period of its order, or "
                              f"{MAGLEV_SLOTS} for maglev)", minimum=0, maximum=65537)
    flush_on_down: bool = setting(False, "when a backend goes DOWN, cut its established flows (conntrack -D; HAProxy "
                                  "on-marked-down shutdown-sessions) instead of leaving them pinned to it")
    retries: int = setting(1, "proxy mode: other backends tried when a connect fails (HAProxy retries + redispatch)",
                           minimum=0, maximum=10)
    timeout_connect: float = setting(1.0, "proxy mode: seconds a connect to a backend may take", minimum=0.01)
    proxy_protocol: str = setting("none", "proxy mode: tell the origin who the client was (PROXY protocol header)",
                                  choices=("none", "v1", "v2"))
    health: L4Check = field(default_factory=L4Check)  # [l4.health]

    def __post_init__(self) -> None:
        if self.impl == "haproxy" and self.mode == "nat":
            raise ValueError("impl = \"haproxy\" is a TCP proxy (mode tcp): it cannot be mode = \"nat\"")
        if self.impl == "haproxy" and self.algorithm not in HAPROXY_TCP:
            raise ValueError(f"HAProxy mode tcp has no algorithm {self.algorithm!r} here; it can run {', '.join(HAPROXY_TCP)}")
        if self.impl == "ipvs" and self.mode == "proxy":
            raise ValueError("impl = \"ipvs\" is the kernel's L4 balancer (NAT or direct routing): it cannot be mode = \"proxy\"")
        if self.impl == "ipvs" and self.algorithm not in IPVS_SCHEDULERS:
            raise ValueError(f"IPVS has no scheduler for {self.algorithm!r}; it can run {', '.join(IPVS_SCHEDULERS)}")
        if self.impl == "haproxy" and self.health.kind == "icmp":
            raise ValueError("HAProxy checks with TCP or HTTP, not ICMP: set [l4.health] kind = \"tcp\" or \"http\"")
        if self.mode == "nat" and self.algorithm not in LOOKUPS:
            raise ValueError(table_refusal(self.algorithm))
        if self.mode == "dsr" and self.algorithm not in DSR_ALGORITHMS:
            raise ValueError(dsr_refusal(self.algorithm))
        if self.mode == "nat" and self.proxy_protocol != "none":
            raise ValueError("proxy_protocol needs mode = \"proxy\": with NAT the origin already sees the client's own address")

    def check_layout(self, layout: Any) -> None:
        """What the nodes' own data planes cannot do (a NAT node cannot run a live-state algorithm, DSR only a hash)."""
        for node in layout.by_role("l4"):
            mode = node_mode(self, layout.modes.get(node))
            if mode == "nat" and self.algorithm not in LOOKUPS:
                raise ValueError(f"{node} balances in the kernel (nat): " + table_refusal(self.algorithm))
            if mode == "dsr" and self.algorithm not in DSR_ALGORITHMS:
                raise ValueError(f"{node} balances by direct server return: " + dsr_refusal(self.algorithm))
            if mode == "dsr" and self.flush_on_down:
                raise ValueError(f"{node} balances by direct server return, which keeps no flows to flush: leave flush_on_down off")
            if mode == "dsr" and layout.modes.get(node) != "dsr":
                raise ValueError(f"{node}: mode = \"dsr\" needs a network built for it (the origins holding the address on "
                                 "their loopback and answering through a router): set dsr = true in [topology]")


def table_refusal(algorithm: str) -> str:
    return (f"algorithm {algorithm!r} decides from live state (connections in flight): the kernel's NAT data plane looks "
            f"flows up in a fixed table, so mode = \"nat\" can run only {', '.join(LOOKUPS)}; use mode = \"proxy\" for it")


def dsr_refusal(algorithm: str) -> str:
    return (f"algorithm {algorithm!r} cannot steer direct server return: with no connection table every packet is looked up "
            f"again, so only a hash of the flow keeps it on one origin ({', '.join(DSR_ALGORITHMS)})")


def node_mode(settings: L4Settings, built_for: str | None) -> str:
    """A node's data plane: the scenario's ``mode`` if set, else what the topology built the node for, else nat."""
    return settings.mode or built_for or "nat"


@dataclass(frozen=True)
class Backend:
    name: str
    address: str
    port: int
    weight: int = 1
    backup: bool = False


def eligible(backends: Sequence[Backend], up: Mapping[str, bool]) -> list[Server]:
    """The backends that may take new connections, as the L7 balancer's rule says: UP primaries, else UP backups, weight > 0."""
    servers = [Server(b.name, b.address, b.port, weight=b.weight, backup=b.backup, up=up.get(b.name, True)) for b in backends]
    for i, s in enumerate(servers):
        s.index = i
    return [s for s in servers if not s.backup and s.eligible] or [s for s in servers if s.backup and s.eligible]


def ipvs_rules(address: str, port: int, algorithm: str, mode: str, backends: Sequence[Backend], up: Mapping[str, bool]) -> list[str]:
    """The kernel's IPVS from the same settings: one virtual service, and the real servers that may take traffic.

    Lines for ``ipvsadm-restore`` (each is an ipvsadm command line). A DOWN
    server is left out, as keepalived removes it; IPVS has no backups, so the
    backups are added only while every primary is DOWN (keepalived's
    ``sorry_server`` is the same idea). ``-m`` is masquerading (NAT), ``-g``
    gatewaying (direct routing, DSR).
    """
    service = f"-t {address}:{port}"
    forward = {"nat": "-m", "dsr": "-g"}[mode]
    lines = [f"-A {service} -s {IPVS_SCHEDULERS[algorithm]}"]
    lines += [f"-a {service} -r {s.address}:{s.port} {forward} -w {s.weight}" for s in eligible(backends, up)]
    return lines


def slot_table(algorithm: str, backends: Sequence[Backend], up: Mapping[str, bool], size: int = 0) -> list[Backend]:
    """The slots the kernel looks new flows up in: the algorithm's own table over the backends that may take traffic.

    The eligibility rule is the L7 balancer's (UP primaries, else UP backups,
    weight > 0). An empty list means no backend may take a new flow.
    """
    if algorithm not in LOOKUPS:
        raise TableNotPossible(table_refusal(algorithm))
    candidates = eligible(backends, up)
    if not candidates:
        return []
    if algorithm == "maglev" and not size:
        size = MAGLEV_SLOTS
    indices = make_algorithm(algorithm, candidates).table(candidates, size or None)
    by_name = {b.name: b for b in backends}
    return [by_name[candidates[i].name] for i in indices]


def shares(slots: Sequence[Backend]) -> dict[str, int]:
    """How many slots each backend holds (what the ``l4_table`` event reports)."""
    out: dict[str, int] = {}
    for b in slots:
        out[b.name] = out.get(b.name, 0) + 1
    return out


def ruleset(address: str, port: int, algorithm: str, slots: Sequence[Backend]) -> str:
    """The whole nftables table for this balancer, as one ``nft -f`` transaction that replaces the old one.

    ``add table`` then ``delete table`` makes the delete safe when there is
    none yet; the kernel applies the batch atomically, so a new flow meets
    either the old table or the new one, never an empty one. Established
    flows do not care: their NAT binding lives in conntrack, not here.
    With no slots at all a new flow is refused with a reset (and counted),
    as a balancer with no backend left should.
    """
    head = [f"add table ip {TABLE}", f"delete table ip {TABLE}", f"table ip {TABLE} {{"]
    match = f"ip daddr {address} tcp dport {port}"
    if slots:
        lookup = f"{LOOKUPS[algorithm]} mod {len(slots)}"
        if lookup.startswith("jhash"):
            lookup += f" seed 0x{JHASH_SEED:x}"
        elements = ", ".join(f"{i} : {b.address} . {b.port}" for i, b in enumerate(slots))
        # The map's key is declared by a numgen expression whatever the lookup: both are 32-bit integers, and
        # nft 1.0.6 crashes listing a map declared 'typeof jhash ...' (a student's 'nft list ruleset' would segfault).
        body = [f"  map slots {{ typeof numgen inc mod {len(slots)} : ip daddr . tcp dport ; elements = {{ {elements} }} }}",
                "  chain prerouting { type nat hook prerouting priority dstnat; policy accept;",
                f"    {match} counter dnat ip addr . port to {lookup} map @slots",
                "  }"]
    else:
        body = ["  chain input { type filter hook input priority filter; policy accept;",
                f"    {match} counter reject with tcp reset",
                "  }"]
    return "\n".join([*head, *body, "}"]) + "\n"


def dsr_ruleset(address: str, port: int, algorithm: str, slots: Sequence[Backend], macs: Mapping[str, str], ingress: str,
                egress: str) -> str:
    """Direct server return in nftables' netdev family: at the ingress of ``ingress``, before any routing, a
    packet for the service gets the MAC of the origin its hash picks and is sent out of ``egress`` as it is.

    The IP packet is untouched (still addressed to ``address``): the origin
    accepts it because it holds that address on its loopback, and answers the
    client directly through its own router. The balancer sees only the
    client's half of the conversation, keeps no state, and a table change
    moves established flows along with new ones (only Maglev keeps most of
    them where they were). With no slots, nothing is steered and the
    balancer's own stack answers with a reset.
    """
    head = ["add table netdev halab_l4", "delete table netdev halab_l4", "table netdev halab_l4 {"]
    body = [f"  chain ingress {{ type filter hook ingress device \"{ingress}\" priority filter; policy accept;"]
    if slots:
        lookup = f"{LOOKUPS[algorithm]} mod {len(slots)} seed 0x{JHASH_SEED:x}"
        elements = ", ".join(f"{i} : {macs[b.name]}" for i, b in enumerate(slots))
        body.insert(0, f"  map macs {{ typeof numgen inc mod {len(slots)} : ether daddr ; elements = {{ {elements} }} }}")
        body.append(f"    ip daddr {address} tcp dport {port} counter ether daddr set {lookup} map @macs fwd to \"{egress}\"")
    body.append("  }")
    return "\n".join([*head, *body, "}"]) + "\n"


def moved(before: Sequence[Backend], after: Sequence[Backend], keys: Sequence[int]) -> float:
    """Share of hash values (``keys``, already reduced to 32 bits) whose backend changes between two tables.

    For source affinity this is the share of clients that land somewhere
    else after a change: mod-N hashing moves most of them, Maglev about
    1/N. (A table's lookup is ``key mod len(table)``, as jhash's is.)
    """
    if not keys or not before or not after:
        return 1.0
    changed = sum(1 for k in keys if before[k % len(before)].name != after[k % len(after)].name)
    return changed / len(keys)
