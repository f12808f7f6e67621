"""The PROXY protocol (HAProxy's spec, versions 1 and 2): how an L4 proxy tells the origin who the client was.

A TCP proxy opens its own connection to the origin, so the origin sees the
proxy's address. The PROXY protocol puts one header in front of the
client's bytes on that connection: a text line (v1) or a binary block (v2)
with the client's and the proxy's addresses and ports. The origin must be
told to expect it: a server that does not would take the header for the
start of an HTTP request and answer 400.
"""
from __future__ import annotations

import ipaddress
import struct

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107  # the spec's longest v1 line, CRLF included


class ProxyHeaderError(ValueError):
    """Not a PROXY protocol header this side can read."""


def encode(version: str, src: str, sport: int, dst: str, dport: int) -> bytes:
    """The header a proxy sends first: ``version`` 'v1' or 'v2', for a TCP over IPv4 connection from src to dst."""
    if version == "v1":
        return f"PROXY TCP4 {src} {dst} {sport} {dport}\r\n".encode()
    if version == "v2":
        addresses = ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed + struct.pack("!HH", sport, dport)
        return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses  # v2 PROXY, TCP over IPv4
    raise ValueError(f"unknown PROXY protocol version {version!r}; expected v1 or v2")


def decode(data: bytes) -> tuple[tuple[str, int, str, int] | None, int]:
    """(source address, source port, destination address, destination port) and the header's length.

    Returns (None, 0) when ``data`` does not start with a header and (None, -1)
    when it may but is not complete yet; raises ``ProxyHeaderError`` for a
    broken header. ``PROXY UNKNOWN`` and v2 LOCAL give (None, length): the
    connection is the proxy's own (a health check), there is no client.
    """
    if data.startswith(V2_SIGNATURE[: len(data)]) and len(data) < 16:
        return None, -1
    if data.startswith(V2_SIGNATURE):
        version_command, family = data[12], data[13]
        length = struct.unpack("!H", data[14:16])[0]
        if version_command >> 4 != 2:
            raise ProxyHeaderError(f"PROXY v2 header with version {version_command >> 4}")
        if len(data) < 16 + length:
            return None, -1
        if version_command & 0xF == 0:  # LOCAL
            return None, 16 + length
        if family != 0x11 or length < 12:
            raise ProxyHeaderError(f"PROXY v2 header for family 0x{family:02x}: only TCP over IPv4 is read here")
        block = data[16:28]
        return (str(ipaddress.IPv4Address(block[:4])), struct.unpack("!H", block[8:10])[0],
                str(ipaddress.IPv4Address(block[4:8])), struct.unpack("!H", block[10:12])[0]), 16 + length
    if not b"PROXY "[: len(data)] == data[:6]:
        return None, 0
    end = data.find(b"\r\n")
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyHeaderError(f"PROXY v1 line longer than {V1_MAX} bytes")
        return None, -1
    parts = data[:end].decode("ascii", "replace").split(" ")
    if parts[1:2] == ["UNKNOWN"]:
        return None, end + 2
    if len(parts) != 6 or parts[1] != "TCP4":
        raise ProxyHeaderError(f"PROXY v1 line {data[:end]!r}: expected 'PROXY TCP4 src dst sport dport'")
    try:
        ipaddress.IPv4Address(parts[2]), ipaddress.IPv4Address(parts[3])
        sport, dport = int(parts[4]), int(parts[5])
    except ValueError as e:
        raise ProxyHeaderError(f"PROXY v1 line {data[:end]!r}: {e}") from None
    if not (0 < sport < 65536 and 0 < dport < 65536):
        raise ProxyHeaderError(f"PROXY v1 line {data[:end]!r}: port out of range")
    return (parts[2], sport, parts[3], dport), end + 2
