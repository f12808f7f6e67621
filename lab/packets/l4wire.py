"""L4 against L7 on the wire: what the captures at the clients and at the origins say about each balancer.

Every request the load generator sends carries ``X-Request-Id``; an L4
balancer passes the bytes on untouched and an L7 balancer forwards the
header, so one request can be found on both sides: in the client's TCP
connection, and in the connection that reached an origin. Comparing the two
connections answers the questions of the lesson, from packets only:

- the same connection (same client address, port and initial sequence
  number at the origin) or a second one the balancer opened;
- which address the origin saw, and whether a header (X-Forwarded-For, a
  PROXY line) names the client;
- whether the balancer decided once per connection (every request of a
  client connection reached the same origin connection) or per request;
- what a client's failed connections looked like: an unanswered SYN, a reset.

Pure over parsed packets (``Segment``); ``read`` turns a pcap into them with Scapy.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

REQUEST_ID = re.compile(rb"\r\nX-Request-Id: *([^\r\n]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Segment:
    t: float
    src: str
    sport: int
    dst: str
    dport: int
    flags: str  # Scapy's letters: S, A, F, R, P
    seq: int
    payload: bytes = b""


@dataclass
class Connection:
    """One TCP connection as a capture saw it, named from the side that sent the SYN."""

    client: str
    cport: int
    server: str
    sport: int
    isn: int
    opened: float
    answered: bool = False  # a SYN-ACK came back
    reset: bool = False
    requests: list[str] = field(default_factory=list)  # X-Request-Id of each request sent on it, in order
    proxy_header: bool = False  # its first bytes were a PROXY protocol header
    forwarded_for: bool = False  # a request on it carried X-Forwarded-For


def connections(segments: Iterable[Segment]) -> list[Connection]:
    """The TCP connections whose SYN is in the capture, with what was sent on them."""
    found: dict[tuple[str, int, str, int], Connection] = {}
    for s in segments:
        key, back = (s.src, s.sport, s.dst, s.dport), (s.dst, s.dport, s.src, s.sport)
        if "S" in s.flags and "A" not in s.flags:
            found[key] = Connection(s.src, s.sport, s.dst, s.dport, s.seq, s.t)  # a reused 4-tuple starts a new one
            continue
        if "S" in s.flags and back in found:
            found[back].answered = True
        conn, outbound = (found[key], True) if key in found else (found.get(back), False)
        if conn is None:
            continue
        if "R" in s.flags:
            conn.reset = True
        if outbound and s.payload:
            if not conn.requests and s.payload.startswith((b"PROXY ", b"\r\n\r\n\x00\r\nQUIT\n")):
                conn.proxy_header = True
            conn.requests += [m.decode(errors="replace").strip() for m in REQUEST_ID.findall(s.payload)]
            conn.forwarded_for = conn.forwarded_for or b"\r\nX-Forwarded-For:" in s.payload
    return list(found.values())


@dataclass
class Verdict:
    """One balancer as the captures saw it (through the traffic of the clients aimed at it)."""

    balancer: str
    client_connections: int = 0
    requests_seen: int = 0  # requests found at both ends
    same_connection: int = 0  # ... whose origin connection was the client's own (same address, port and ISN)
    new_connection: int = 0
    origin_sees: set[str] = field(default_factory=set)
    named_by: set[str] = field(default_factory=set)  # how the origin learns who the client was
    spread: int = 0  # client connections whose requests reached more than one origin
    most_requests: int = 0  # the most requests one client connection carried
    unanswered_syns: int = 0
    resets: int = 0

    @property
    def decides(self) -> str:
        if not self.requests_seen:
            return "—"
        return "per request" if self.spread else "per connection (on the SYN)"


def compare(client_conns: Mapping[str, list[Connection]], origin_conns: Mapping[str, list[Connection]],
            aims: Mapping[str, str], names: Mapping[str, str]) -> list[Verdict]:
    """Per balancer: ``client_conns`` and ``origin_conns`` by node, ``aims`` client -> the balancer it used, ``names`` address -> node."""
    at_origin: dict[str, tuple[str, Connection]] = {}
    for origin, conns in origin_conns.items():
        for c in conns:
            for rid in c.requests:
                at_origin.setdefault(rid, (origin, c))
    verdicts: dict[str, Verdict] = {}
    for client, conns in client_conns.items():
        v = verdicts.setdefault(aims.get(client, "?"), Verdict(aims.get(client, "?")))
        for c in conns:
            v.client_connections += 1
            v.unanswered_syns += not c.answered
            v.resets += c.reset
            v.most_requests = max(v.most_requests, len(c.requests))
            reached = set()
            for rid in c.requests:
                if rid not in at_origin:
                    continue
                origin, oc = at_origin[rid]
                reached.add((origin, oc.client, oc.cport, oc.isn))
                v.requests_seen += 1
                same = (oc.client, oc.cport, oc.isn) == (c.client, c.cport, c.isn)
                v.same_connection += same
                v.new_connection += not same
                v.origin_sees.add(names.get(oc.client, oc.client))
                if oc.proxy_header:
                    v.named_by.add("PROXY header")
                if oc.forwarded_for:
                    v.named_by.add("X-Forwarded-For")
            v.spread += len({r[0] for r in reached}) > 1
    return sorted(verdicts.values(), key=lambda v: v.balancer)


def rows(verdicts: list[Verdict]) -> list[tuple[str, ...]]:
    """The lesson's table: one row per question, one column per balancer."""
    def col(f):  # type: ignore[no-untyped-def]
        return tuple(f(v) for v in verdicts)
    return [
        ("", *col(lambda v: v.balancer)),
        ("client connections", *col(lambda v: str(v.client_connections))),
        ("requests found at both ends", *col(lambda v: str(v.requests_seen))),
        ("TCP connections per request path", *col(lambda v: "—" if not v.requests_seen else "1 (the client's own)" if not v.new_connection
                                                   else "2 (the balancer opens its own)" if not v.same_connection else "mixed")),
        ("the origin sees", *col(lambda v: ", ".join(sorted(v.origin_sees)) or "—")),
        ("who asked, told by", *col(lambda v: ", ".join(sorted(v.named_by)) or ("not needed" if v.requests_seen and not v.new_connection
                                                                                 else "nothing"))),
        ("decides", *col(lambda v: v.decides)),
        ("most requests on one client connection", *col(lambda v: str(v.most_requests))),
        ("client connections reaching 2+ origins", *col(lambda v: str(v.spread))),
        ("SYNs never answered", *col(lambda v: str(v.unanswered_syns))),
        ("connections reset", *col(lambda v: str(v.resets))),
    ]


def read(path: Path, port: int | None = None) -> list[Segment]:
    """A pcap's TCP segments (Scapy), optionally only those to or from ``port``."""
    from scapy.all import IP, TCP, PcapReader  # imported here: the analysis above needs no Scapy

    out = []
    with PcapReader(str(path)) as packets:
        for p in packets:
            if IP not in p or TCP not in p:
                continue
            ip, tcp = p[IP], p[TCP]
            if port is not None and port not in (tcp.sport, tcp.dport):
                continue
            out.append(Segment(float(p.time), ip.src, tcp.sport, ip.dst, tcp.dport, str(tcp.flags), tcp.seq, bytes(tcp.payload)))
    return out


def analyse(run_dir: Path) -> list[Verdict]:
    """The verdicts for a run that captured its clients' and origins' interfaces (``[capture] interfaces``)."""
    from lab.events import node_names, read_events

    events = read_events(run_dir)
    built = next((e for e in events if e["kind"] == "lab_built"), None)
    if built is None:
        raise ValueError(f"{run_dir}: not a run directory (no lab_built event under events/)")
    names = node_names(built)
    roles = built["nodes"]
    aims = {e["node"]: names.get(e["target"], e["target"]) for e in events if e["kind"] == "load_started"}
    clients: dict[str, list[Connection]] = {}
    origins: dict[str, list[Connection]] = {}
    for pcap in sorted((run_dir / "pcap").glob("*.pcap")):
        node = pcap.stem.split("-")[0]
        if roles.get(node) == "client":
            clients[node] = [c for c in connections(read(pcap)) if c.client == built["addresses"][node]]
        elif roles.get(node) == "origin":
            origins[node] = connections(read(pcap))
    if not clients or not origins:
        raise ValueError(f"{run_dir}: needs captures of clients and origins ([capture] interfaces = [\"c1-eth0\", \"o1-eth0\", ...]); "
                         f"found {', '.join(p.name for p in (run_dir / 'pcap').glob('*.pcap')) or 'none'}")
    return compare(clients, origins, aims, names)
