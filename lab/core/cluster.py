"""One lab over several machines: which node runs where, which tunnel joins them, and one clock for all.

A scenario's ``[cluster]`` table names the servers (the first is the machine
halab runs on), places nodes on them by name patterns, and picks the kind of
tunnel that carries a link between two servers. Everything here is pure:
the network side (Mininet Cluster Edition, ssh, the agents) is
``lab.net.cluster``; this module decides and computes.

Placement: a host goes to the server of the first pattern that matches its
name, else to the first server. A switch not placed by a pattern follows
most of its hosts (ties: the first server), so a placement like
``{ "o*" = "lab2" }`` keeps the origins and their switch together and only
the links to the rest cross between servers.

Clocks: each server's clock is compared with this one over the control
connection, NTP's way (RFC 5905's on-wire offset): a sample is the local
send time ``t0``, the server's reading ``t1`` and the local receive time
``t3``. Its offset is ``t1 - (t0 + t3) / 2`` and it is wrong by at most half
the round trip, wherever in the round trip the server read its clock. The
sample with the shortest round trip wins. Sampling at the start and the end
of a run bounds drift too: the bound given is the larger of the best
half-round-trip and half the change between the two.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from lab.core.schema import ConfigError, build, check_table, fields_of, setting, suggest

LOCAL = "localhost"
# How a link between two servers is carried. GRE (gretap) is Cluster Edition's own; VXLAN is the
# same idea over UDP port 4789, in every kernel that has no GRE (this lab's VM). "auto": GRE where
# both ends have it, else VXLAN.
KINDS = ("gre", "vxlan")  # in order of preference
TUNNELS = ("auto", *KINDS)
TUNNEL_OVERHEAD = {"gre": 38, "vxlan": 50}  # bytes each tunnel adds to an Ethernet frame (outer IPv4 + headers)


@dataclass(frozen=True)
class ClusterSettings:
    servers: tuple[str, ...] = setting((LOCAL,), "the machines the lab runs on; the first is this one ('localhost')")
    addresses: Mapping[str, str] = setting({}, "server -> its IPv4 address, e.g. { lab2 = \"192.168.56.12\" } (default: "
                                               "the name is looked up)")
    place: Mapping[str, str] = setting({}, "node name pattern -> server, e.g. { \"o*\" = \"lab2\" }; the first match wins, "
                                           "other hosts stay on the first server, a switch follows most of its hosts")
    tunnel: str = setting("auto", "what carries a link between two servers: gre, vxlan, or auto (GRE where both have it)",
                          choices=TUNNELS)
    user: str = setting("root", "the user halab logs in as on the other servers (ssh keys, no password)")
    ssh_config: str = setting("", "an ssh_config file for reaching the servers (passed as ssh -F), relative to the scenario")

    @property
    def remote(self) -> tuple[str, ...]:
        return tuple(s for s in self.servers if s != LOCAL)


FIELDS = fields_of(ClusterSettings)


def check_cluster(table: Mapping[str, Any], nodes: Iterable[str], source: str) -> ClusterSettings | None:
    """The ``[cluster]`` table checked against the topology's nodes; None when there is none."""
    if not table:
        return None
    values = check_table(table, FIELDS, source, "cluster")
    servers = list(values["servers"])
    if not servers:
        raise ConfigError(source, "cluster.servers", "needs at least one server")
    if servers[0] != LOCAL:
        raise ConfigError(source, "cluster.servers", f"the first server is the machine halab runs on: write 'localhost' first "
                          f"(got {servers[0]!r})")
    if len(set(servers)) != len(servers):
        raise ConfigError(source, "cluster.servers", "a server is named twice")
    for name, address in values["addresses"].items():
        if name not in servers:
            raise ConfigError(source, f"cluster.addresses.{name}", f"not one of the servers{suggest(name, servers)} "
                              f"({', '.join(servers)})")
        if not _is_ipv4(address):
            raise ConfigError(source, f"cluster.addresses.{name}", f"got {address!r}, expected an IPv4 address")
    names = sorted(nodes)
    for pattern, server in values["place"].items():
        if server not in servers:
            raise ConfigError(source, f"cluster.place.{pattern}", f"{server!r} is not one of the servers"
                              f"{suggest(server, servers)} ({', '.join(servers)})")
        if not fnmatch.filter(names, pattern):
            raise ConfigError(source, f"cluster.place.{pattern}", f"matches no node{suggest(pattern, names)} (nodes: {', '.join(names)})")
    if values["ssh_config"]:
        path = Path(source).parent / values["ssh_config"]
        if not path.is_file():
            raise ConfigError(source, "cluster.ssh_config", f"no file {str(path)!r}")
        values["ssh_config"] = str(path.resolve())
    return build(ClusterSettings, values)


def check_fits(settings: ClusterSettings, nodes: Mapping[str, str], links: Iterable[tuple[str, str]], switch: str,
               capture: Iterable[str], faults: Iterable[Any], source: str) -> None:
    """What a lab over several servers cannot do, refused before anything is built: an Open vSwitch bridge (halab's
    remote switch is a Linux bridge), a capture on another server's node (its pcap would be written there) and an
    attack started from a host there (its process would be out of this machine's reach)."""
    from lab.core.faults import ACTIONS, HOST

    if switch != "lxbr":
        raise ConfigError(source, "topology.switch", f"a lab over several servers uses Linux bridges; leave switch = \"lxbr\" "
                          f"(got {switch!r})")
    placed = place_nodes(nodes, links, settings)
    first = settings.servers[0]
    for i, name in enumerate(capture):
        node = next((n for n in sorted(placed, key=len, reverse=True) if name.startswith(n + "-")), None)
        if node is not None and placed[node] != first:
            raise ConfigError(source, f"capture.interfaces[{i}]", f"{name} belongs to {node}, placed on {placed[node]}: capture "
                              f"on interfaces of nodes on {first} (the pcap is written where tcpdump runs)")
    for fault in faults:
        action = ACTIONS.get(fault.action)
        if action is None or not fault.target or not (action.target == HOST or action.ordered):
            continue
        attacker = fault.target.split("/")[0]
        if placed.get(attacker, first) != first:
            raise ConfigError(source, f"faults[{fault.index}].target", f"{attacker} is placed on {placed[attacker]}: in a lab over "
                              f"several servers, attacks start from hosts on {first} (place {attacker} there)")


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and 0 <= int(p) <= 255 and str(int(p)) == p for p in parts)


def place(hosts: Sequence[str], switches: Sequence[str], links: Iterable[tuple[str, str]],
          settings: ClusterSettings) -> dict[str, str]:
    """node -> server for every host and switch."""
    def by_pattern(node: str) -> str | None:
        return next((server for pattern, server in settings.place.items() if fnmatch.fnmatchcase(node, pattern)), None)

    first = settings.servers[0]
    out = {h: by_pattern(h) or first for h in hosts}
    neighbours: dict[str, list[str]] = {s: [] for s in switches}
    for a, b in links:
        if a in neighbours and b in out:
            neighbours[a].append(b)
        if b in neighbours and a in out:
            neighbours[b].append(a)
    for switch in switches:
        explicit = by_pattern(switch)
        if explicit:
            out[switch] = explicit
            continue
        counts = {server: 0 for server in settings.servers}
        for host in neighbours[switch]:
            counts[out[host]] += 1
        out[switch] = max(settings.servers, key=lambda s: counts[s])  # max keeps the first of equals: the first server
    return out


def place_nodes(nodes: Mapping[str, str], links: Iterable[tuple[str, str]], settings: ClusterSettings) -> dict[str, str]:
    """``place`` for a scenario's layout (node -> role; a switch's role is 'switch')."""
    return place([n for n, r in nodes.items() if r != "switch"], [n for n, r in nodes.items() if r == "switch"], links, settings)


def describe(settings: ClusterSettings, nodes: Mapping[str, str], links: Iterable[tuple[str, str]]) -> list[str]:
    """Where each node will run and which links become tunnels, as ``halab check`` prints it."""
    links = list(links)
    placed = place_nodes(nodes, links, settings)
    out = [f"on {server}: {' '.join(sorted(n for n, where in placed.items() if where == server)) or 'nothing'}"
           for server in settings.servers]
    tunnels = crossing(links, placed)
    out.append(f"{len(tunnels)} link(s) between servers, each a tunnel ({settings.tunnel}): "
               f"{', '.join(f'{a}-{b}' for a, b in tunnels) or 'none'}")
    return out


def crossing(links: Iterable[tuple[str, str]], placement: Mapping[str, str]) -> list[tuple[str, str]]:
    """The links whose ends are on different servers: each becomes a tunnel."""
    return [(a, b) for a, b in links if placement[a] != placement[b]]


def choose_tunnel(requested: str, kinds: Mapping[str, Iterable[str]]) -> str:
    """The tunnel kind for this run, from what each server's kernel can make (server -> {'gre', 'vxlan'}).

    Raises ValueError naming the server that lacks the requested kind."""
    have = {server: set(k) for server, k in kinds.items()}
    order = KINDS if requested == "auto" else (requested,)
    for kind in order:
        lacking = sorted(s for s, k in have.items() if kind not in k)
        if not lacking:
            return kind
    if requested == "auto":
        raise ValueError("no tunnel kind works on every server: " + "; ".join(
            f"{s} has {', '.join(sorted(k)) or 'neither gretap nor vxlan'}" for s, k in sorted(have.items())))
    raise ValueError(f"tunnel = {requested!r}, but {', '.join(lacking)} cannot make a {requested} interface "
                     f"(try tunnel = \"auto\")")


def inner_mtu(kind: str, underlay_mtu: int) -> int:
    """The largest MTU the lab's interfaces may have so that a full frame still fits in one tunnel packet."""
    return min(1500, underlay_mtu - TUNNEL_OVERHEAD[kind])


# ---- clocks ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Offset:
    """A server's clock minus this one's, and how wrong that can be (seconds)."""
    offset: float
    bound: float
    rtt: float
    samples: int

    def to_local(self, t: float) -> float:
        return t - self.offset


def estimate(samples: Iterable[tuple[float, float, float]]) -> Offset:
    """The best estimate from (t0 local send, t1 server clock, t3 local receive) samples: the shortest round trip's."""
    good = [(t3 - t0, t1 - (t0 + t3) / 2) for t0, t1, t3 in samples if t3 >= t0]
    if not good:
        raise ValueError("no usable clock sample (each needs a receive time after its send time)")
    rtt, offset = min(good)
    return Offset(offset=offset, bound=rtt / 2, rtt=rtt, samples=len(good))


def across_run(start: Offset, end: Offset) -> Offset:
    """One offset for a whole run from the estimates at its start and end: their mean, wrong by the larger of
    either's own bound and half their difference (drift)."""
    half_drift = abs(end.offset - start.offset) / 2
    return Offset(offset=(start.offset + end.offset) / 2, bound=max(start.bound, end.bound, half_drift),
                  rtt=min(start.rtt, end.rtt), samples=start.samples + end.samples)


def merge(streams: Mapping[str, Iterable[Mapping[str, Any]]], offsets: Mapping[str, Offset]) -> list[dict[str, Any]]:
    """Events of several servers (server -> its events) on this machine's clock, in time order.

    A server without an offset is this machine (or shares its clock)."""
    out: list[dict[str, Any]] = []
    for server, events in streams.items():
        clock = offsets.get(server)
        if clock is None:
            out.extend(events)
            continue
        for event in events:
            e = dict(event)
            e["t"] = clock.to_local(e["t"])
            out.append(e)
    out.sort(key=lambda e: e["t"])
    return out


def pair_bound(a: str, b: str, offsets: Mapping[str, Offset]) -> float:
    """How wrong a time between an event on server ``a`` and one on ``b`` can be: both clocks' bounds added."""
    if a == b:
        return 0.0
    return sum(offsets[s].bound for s in (a, b) if s in offsets)
