"""One readable line per packet, saying what it means in the lab.

A raw trace of a balanced HTTP service is a wall of SYNs and ACKs. This
module names the hosts (``10.0.0.2`` -> ``lb1``) and says what each packet
is doing: a TCP handshake step, a health-check probe, a forwarded request
with its ``Via`` header, an answer with ``X-Served-By``, a reset, a ping
or an ARP "who has". It works on Scapy packets, so it annotates a live
capture (``halab sniff``) and a saved pcap alike.
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


TCP_FLAGS = {"S": "SYN", "SA": "SYN-ACK", "A": "ACK", "FA": "FIN", "F": "FIN", "R": "RST", "RA": "RST", "PA": "data"}
HANDSHAKE = {"S": "handshake 1/3: open connection", "SA": "handshake 2/3: accepted", "R": "connection refused or reset",
             "RA": "connection refused or reset", "F": "closing", "FA": "closing"}


def annotate(pkt: Any, names: Mapping[str, str] | None = None, t0: float = 0.0) -> str:
    """One line for one Scapy packet."""
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
            meaning = describe_http(payload) or f"{len(payload)} bytes of data"
            return f"{stamp}  TCP  {route}  {meaning}"
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
