"""Active health probes: HTTP, TCP connect and ICMP echo, each returning (passed, why).

They fail in different ways on purpose, because the lesson is which ones a
broken server can fool. A frozen (SIGSTOPped) process still gets its ping
answered and its TCP handshake completed by the kernel, so only the HTTP
probe sees that nothing is home: the classic gray failure.

- HTTP (HAProxy ``option httpchk``): GET the path on a new connection; pass
  on 2xx/3xx, or on exactly ``expect_status``; with ``expect_body`` the
  body must contain that text too (``http-check expect string``).
- TCP (HAProxy's plain ``check``): the connection opens.
- ICMP: an echo reply comes back (the LVS/keepalived ``PING_CHECK`` idea).

The caller enforces the timeout (``asyncio.timeout`` around the call).
"""
from __future__ import annotations

import asyncio
import itertools
import os
import socket
import struct

from lab.core.checksum import internet_checksum
from lab.core.http1 import parse_response_head, response_framing
from lab.services.httpio import read_body, read_head

USER_AGENT = "halab-check"  # lets `halab sniff` label probe traffic
_sequence = itertools.count(1)


async def http_probe(address: str, port: int, path: str, expect_status: int = 0, expect_body: str = "") -> tuple[bool, str]:
    reader, writer = await asyncio.open_connection(address, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: {USER_AGENT}\r\nConnection: close\r\n\r\n".encode())
        head = parse_response_head(await read_head(reader))
        if expect_status and head.status != expect_status:
            return False, f"HTTP {head.status}, expected {expect_status}"
        if not expect_status and not 200 <= head.status < 400:
            return False, f"HTTP {head.status}"
        # A checked server must frame its answer one way only: an answer a proxy could read two ways
        # (both lengths, two lengths, a length that is not a number) is a server not to send clients to.
        if "content-length" in head.index and "transfer-encoding" in head.index:
            return False, f"HTTP {head.status} framed by both Content-Length and Transfer-Encoding"
        framing = response_framing(head, "GET")
        if expect_body:
            body = await read_body(reader, *framing)
            if expect_body.encode() not in body:
                return False, f"HTTP {head.status} without {expect_body!r} in the body"
        return True, f"HTTP {head.status}"
    finally:
        writer.close()


async def tcp_probe(address: str, port: int) -> tuple[bool, str]:
    _, writer = await asyncio.open_connection(address, port)
    writer.close()
    return True, "TCP connect ok"


def echo_request(ident: int, seq: int, payload: bytes = b"halab-check") -> bytes:
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, internet_checksum(header + payload), ident, seq) + payload


def is_echo_reply(packet: bytes, source: str, ident: int, seq: int) -> bool:
    """True if ``packet`` (an IPv4 datagram from a raw socket) answers our request."""
    if len(packet) < 28 or socket.inet_ntoa(packet[12:16]) != source:
        return False
    ihl = (packet[0] & 0x0F) * 4
    kind, _, _, rid, rseq = struct.unpack("!BBHHH", packet[ihl:ihl + 8])
    return kind == 0 and rid == ident and rseq == seq


async def icmp_probe(address: str) -> tuple[bool, str]:
    """One echo request on a raw socket (the services run as root in their namespace)."""
    loop = asyncio.get_running_loop()
    ident, seq = os.getpid() & 0xFFFF, next(_sequence) & 0xFFFF
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.setblocking(False)
        sock.sendto(echo_request(ident, seq), (address, 0))
        while True:
            if is_echo_reply(await loop.sock_recv(sock, 2048), address, ident, seq):
                return True, "ICMP echo reply"
