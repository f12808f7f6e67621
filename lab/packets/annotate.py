"""One readable line per packet, saying what it means in the lab.

A raw trace of a balanced HTTP service is a wall of SYNs and ACKs. This
module names the hosts (``10.0.0.2`` -> ``lb1``) and says what each packet
is doing: a TCP handshake step, a health-check probe, a forwarded request
with its ``Via`` header, an answer with ``X-Served-By``, a reset, a ping
or an ARP "who has". It works on Scapy packets, so it annotates a live
capture (``halab sniff``) and a saved pcap alike.

Two more things the proxy lessons need. Encrypted traffic is named as what
it is (a TLS handshake with the server name the client asked for, then
records of encrypted data nobody on the way can read). And given each
node's role, every message is labelled with its leg and direction (RFC 9110
3.7): toward the origin is *inbound* (client -> proxy -> gateway -> origin),
toward the client *outbound*.
"""
from __future__ import annotations

from typing import Any, Mapping

HEALTH_AGENT = b"halab-check"


def _header(payload: bytes, name: bytes) -> str | None:
    for line in payload.split(b"\r\n")[1:]:
        if not line:
            break
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower():
            return value.strip().decode("latin-1")
    return None


def describe_http(payload: bytes) -> str | None:
    """'HTTP GET /x (health check)' or 'HTTP 200 from o2 via lb1' for a segment starting a message."""
    first = payload.split(b"\r\n", 1)[0]
    parts = first.split(b" ")
    if len(parts) >= 3 and parts[-1].startswith(b"HTTP/1."):
        method, target = parts[0].decode("latin-1"), parts[1].decode("latin-1")
        notes = []
        if HEALTH_AGENT in payload.split(b"\r\n\r\n", 1)[0]:
            notes.append("health check probe")
        via = _header(payload, b"via")
        if via:
            notes.append(f"forwarded, Via: {via}")
        xff = _header(payload, b"x-forwarded-for")
        if xff:
            notes.append(f"X-Forwarded-For: {xff}")
        rid = _header(payload, b"x-request-id")
        if rid:
            notes.append(f"id {rid}")
        return f"HTTP {method} {target}" + (f"  ({'; '.join(notes)})" if notes else "")
    if first.startswith(b"HTTP/1.") and len(parts) >= 2:
        status = parts[1].decode("latin-1")
        notes = []
        served = _header(payload, b"x-served-by")
        if served:
            notes.append(f"served by {served}")
        upstream = _header(payload, b"x-upstream")
        if upstream:
            notes.append(f"upstream {upstream}")
        via = _header(payload, b"via")
        if via:
            notes.append(f"Via: {via}")
        return f"HTTP {status} answer" + (f"  ({'; '.join(notes)})" if notes else "")
    return None


TLS_RECORDS = {20: "change cipher spec", 21: "alert", 22: "handshake", 23: "application data (encrypted)"}
TLS_HANDSHAKES = {1: "ClientHello", 2: "ServerHello", 11: "Certificate", 4: "NewSessionTicket"}


def server_name(hello: bytes) -> str | None:
    """The SNI host name in a ClientHello record (``hello`` from its record header on), if the bytes reach it."""
    try:
        at = 5 + 4 + 2 + 32  # record header, handshake header, version, random
        at += 1 + hello[at]  # session id
        at += 2 + int.from_bytes(hello[at:at + 2], "big")  # cipher suites
        at += 1 + hello[at]  # compression methods
        end = at + 2 + int.from_bytes(hello[at:at + 2], "big")
        at += 2
        while at + 4 <= min(end, len(hello)):
            kind, size = int.from_bytes(hello[at:at + 2], "big"), int.from_bytes(hello[at + 2:at + 4], "big")
            if kind == 0:  # server_name: list length, type 0 (host name), name length, name
                length = int.from_bytes(hello[at + 7:at + 9], "big")
                name = hello[at + 9:at + 9 + length]
                return name.decode("ascii") if len(name) == length else None
            at += 4 + size
    except IndexError:
        return None
    return None


def describe_tls(payload: bytes) -> str | None:
    """'TLS handshake: ClientHello for gw1' or 'TLS application data (encrypted), 517 bytes' for a segment starting a record."""
    if len(payload) < 5 or payload[0] not in TLS_RECORDS or payload[1] != 3:
        return None
    what = TLS_RECORDS[payload[0]]
    if payload[0] == 22 and len(payload) > 5:
        step = TLS_HANDSHAKES.get(payload[5], "")
        if step == "ClientHello":
            name = server_name(payload)
            return "TLS handshake: ClientHello" + (f" for {name} (the server name travels in clear)" if name else "")
        return f"TLS handshake: {step or 'encrypted'}"
    return f"TLS {what}, {len(payload)} bytes"


# where each role stands on the path from client to origin (RFC 9110 3.7: inbound = toward the origin)
PATH_ORDER = {"client": 0, "proxy": 1, "router": 2, "balancer": 3, "origin": 4}


def leg(src_role: str | None, dst_role: str | None) -> str:
    """'[client->proxy inbound]' for a message between two roles on the path, else ''."""
    a, b = PATH_ORDER.get(src_role or ""), PATH_ORDER.get(dst_role or "")
    if a is None or b is None or a == b:
        return ""
    return f"  [{src_role}->{dst_role} {'inbound' if b > a else 'outbound'}]"


TCP_FLAGS = {"S": "SYN", "SA": "SYN-ACK", "A": "ACK", "FA": "FIN", "F": "FIN", "R": "RST", "RA": "RST", "PA": "data"}
HANDSHAKE = {"S": "handshake 1/3: open connection", "SA": "handshake 2/3: accepted", "R": "connection refused or reset",
             "RA": "connection refused or reset", "F": "closing", "FA": "closing"}


def annotate(pkt: Any, names: Mapping[str, str] | None = None, t0: float = 0.0, roles: Mapping[str, str] | None = None) -> str:
    """One line for one Scapy packet; ``names``: address -> node, ``roles``: node -> its role (for the leg of a message)."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import ARP

    names = names or {}

    def who(ip: str) -> str:
        return f"{names[ip]}({ip})" if ip in names else ip

    stamp = f"{float(pkt.time) - t0:9.4f}"
    if ARP in pkt:
        a = pkt[ARP]
        if a.op == 1:
            return f"{stamp}  ARP  who has {who(a.pdst)}? tell {who(a.psrc)}"
        garp = "  (gratuitous: announcing its address)" if a.psrc == a.pdst else ""
        return f"{stamp}  ARP  {who(a.psrc)} is at {a.hwsrc}{garp}"
    if IP not in pkt:
        return f"{stamp}  {pkt.summary()}"
    ip = pkt[IP]
    if TCP in pkt:
        tcp = pkt[TCP]
        flags = str(tcp.flags)
        route = f"{who(ip.src)}:{tcp.sport} -> {who(ip.dst)}:{tcp.dport}"
        payload = bytes(tcp.payload)
        if payload:
            meaning = describe_http(payload) or describe_tls(payload) or f"{len(payload)} bytes of data"
            where = leg(roles.get(names.get(ip.src, "")), roles.get(names.get(ip.dst, ""))) if roles else ""
            return f"{stamp}  TCP  {route}  {meaning}{where}"
        meaning = HANDSHAKE.get(flags, TCP_FLAGS.get(flags, flags))
        return f"{stamp}  TCP  {route}  {TCP_FLAGS.get(flags, flags)}" + (f"  ({meaning})" if meaning not in TCP_FLAGS.values() else "")
    if ICMP in pkt:
        icmp = pkt[ICMP]
        kind = {8: "echo request (ping)", 0: "echo reply", 3: "destination unreachable"}.get(icmp.type, f"type {icmp.type}")
        return f"{stamp}  ICMP {who(ip.src)} -> {who(ip.dst)}  {kind}"
    if ip.proto == 112:
        return f"{stamp}  VRRP {who(ip.src)} -> {ip.dst}  advertisement"
    if UDP in pkt:
        return f"{stamp}  UDP  {who(ip.src)}:{pkt[UDP].sport} -> {who(ip.dst)}:{pkt[UDP].dport}"
    return f"{stamp}  IP   {who(ip.src)} -> {who(ip.dst)} proto {ip.proto}"
