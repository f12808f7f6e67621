"""The internet checksum (RFC 1071): ones' complement of the ones' complement sum of 16-bit words.

One implementation for every packet halab builds or mends: ICMP echo
probes, VRRP adverts (over an IPv4 pseudo-header) and the TCP/UDP
checksums the userspace bond agent finishes for offloaded frames.
"""
from __future__ import annotations

import struct


def internet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total >> 16) + (total & 0xFFFF)
    return ~total & 0xFFFF
