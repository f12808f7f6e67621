"""VRRPv3 advertisements as bytes (RFC 5798 section 5), without sockets.

    0                   1                   2                   3
    |Version| Type  |   VRID        |   Priority    | Count IPvX Addr|
    |(rsvd) |     Max Adver Int     |          Checksum              |
    |                  IPvX Address(es)                              |

Version 3, type 1 (ADVERTISEMENT); Max Adver Int in centiseconds (12 bits);
the checksum covers an IPv4 pseudo-header, as for UDP. Sent to 224.0.0.18,
IP protocol 112, TTL 255 (a receiver drops anything else: it must come from
the same link).
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from lab.core.checksum import internet_checksum

PROTO = 112
GROUP = "224.0.0.18"


class BadAdvert(ValueError):
    pass


@dataclass(frozen=True)
class Advert:
    vrid: int
    priority: int
    interval: float  # seconds
    addresses: tuple[str, ...]


def _pseudo(src: str, dst: str, length: int) -> bytes:
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, PROTO, length)


def encode(advert: Advert, src: str, dst: str = GROUP) -> bytes:
    centis = round(advert.interval * 100)
    if not 1 <= centis <= 0xFFF:
        raise BadAdvert(f"interval {advert.interval} s does not fit 12 bits of centiseconds")
    body = b"".join(socket.inet_aton(a) for a in advert.addresses)
    head = struct.pack("!BBBBHH", 0x31, advert.vrid, advert.priority, len(advert.addresses), centis, 0)
    checksum = internet_checksum(_pseudo(src, dst, len(head) + len(body)) + head + body)
    return head[:6] + struct.pack("!H", checksum) + body


def decode(message: bytes, src: str, dst: str = GROUP) -> Advert:
    """Parse a VRRP message (the IP payload); raise ``BadAdvert`` saying what is wrong."""
    if len(message) < 8:
        raise BadAdvert(f"{len(message)} bytes is shorter than a VRRP header")
    ver_type, vrid, priority, count, word, _ = struct.unpack("!BBBBHH", message[:8])
    if ver_type >> 4 != 3:
        raise BadAdvert(f"VRRP version {ver_type >> 4} (halab speaks version 3; keepalived needs 'vrrp_version 3')")
    if ver_type & 0xF != 1:
        raise BadAdvert(f"VRRP type {ver_type & 0xF} is not an ADVERTISEMENT")
    if len(message) < 8 + 4 * count:
        raise BadAdvert(f"says {count} addresses but carries {len(message) - 8} bytes of them")
    if internet_checksum(_pseudo(src, dst, len(message)) + message) != 0:
        raise BadAdvert("bad checksum")
    addresses = tuple(socket.inet_ntoa(message[8 + 4 * i: 12 + 4 * i]) for i in range(count))
    return Advert(vrid, priority, (word & 0xFFF) / 100, addresses)


def decode_ip(packet: bytes) -> tuple[str, int, Advert]:
    """An IPv4 datagram from a raw socket -> (source, TTL, advert)."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        raise BadAdvert("not an IPv4 packet")
    ihl = (packet[0] & 0xF) * 4
    ttl, proto = packet[8], packet[9]
    if proto != PROTO:
        raise BadAdvert(f"IP protocol {proto} is not VRRP")
    src, dst = socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20])
    return src, ttl, decode(packet[ihl:], src, dst)


def garp(mac: str, ip: str) -> bytes:
    """A gratuitous ARP as an Ethernet frame, to everyone: an ARP announcement (RFC 5227 2.3).

    A request whose sender and target address are both ``ip`` (target MAC
    zero). Linux treats exactly this as gratuitous and updates a neighbour
    entry at once; a *reply* counts as gratuitous only if its target MAC
    equals its sender MAC, and otherwise waits out ``locktime``, which
    continuous traffic keeps renewing: the clients would stay with the old
    owner of the address (seen after a healed split brain).
    """
    hw = bytes.fromhex(mac.replace(":", ""))
    addr = socket.inet_aton(ip)
    eth = b"\xff" * 6 + hw + b"\x08\x06"
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + hw + addr + b"\x00" * 6 + addr
    return eth + arp
