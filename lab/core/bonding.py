"""NIC bonding (Linux) / teaming (Windows): several ports that act as one.

A bond has one MAC and one IP; under it, member links ("slaves") carry the
frames. The *mode* decides which member sends each frame, and which members
may receive (Linux ``Documentation/networking/bonding.rst``):

- ``active-backup`` (mode 1): one member carries everything; when its link
  fails (seen by MII monitoring every ``miimon`` ms) the next member takes
  over and the bond sends a gratuitous ARP so the switches relearn where the
  MAC lives. Redundancy only, no extra bandwidth.
- ``balance-rr`` (mode 0): frames take turns on the members: two links, twice
  the bandwidth for one flow, at the price of reordering.
- ``balance-xor`` (mode 2): a hash picks the member, so a flow stays on one
  link (no reordering) and different flows spread. ``layer2``:
  (source MAC XOR destination MAC XOR EtherType) mod n; ``layer3+4``: ports
  and IP addresses, so flows between the same two hosts spread too.
- ``broadcast`` (mode 3): every frame on every member.

This module is the decision logic only (sans-IO, time passed in);
``lab.services.team`` moves the frames.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from lab.core.checksum import internet_checksum

ACTIVE_BACKUP, BALANCE_RR, BALANCE_XOR, BROADCAST = "active-backup", "balance-rr", "balance-xor", "broadcast"
MODES = (ACTIVE_BACKUP, BALANCE_RR, BALANCE_XOR, BROADCAST)
HASH_POLICIES = ("layer2", "layer3+4")
MIIMON = 0.1  # seconds; 100 ms is the usual miimon


def layer2_hash(frame: bytes) -> int:
    """Kernel bond_xmit_hash, layer2: last byte of src MAC ^ dst MAC ^ EtherType."""
    if len(frame) < 14:
        return 0
    return frame[5] ^ frame[11] ^ struct.unpack("!H", frame[12:14])[0]


def layer34_hash(frame: bytes) -> int:
    """Kernel layer3+4: ports and addresses folded, so separate flows spread."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return layer2_hash(frame)
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    saddr, daddr = struct.unpack("!II", frame[26:34])
    ports = 0
    if proto in (6, 17) and len(frame) >= 14 + ihl + 4:
        sport, dport = struct.unpack("!HH", frame[14 + ihl: 18 + ihl])
        ports = sport ^ dport
    h = ports ^ saddr ^ daddr
    h ^= h >> 16
    h ^= h >> 8
    return h


def complete_checksum(frame: bytes) -> bytes:
    """Fill in the TCP/UDP checksum of an IPv4 frame whose sender left it to the NIC.

    Between network namespaces Linux offloads checksums: a frame crossing
    veth links still carries a *partial* TCP/UDP checksum (CHECKSUM_PARTIAL),
    to be finished by hardware that never comes. A kernel bond keeps that
    state with the packet; a userspace agent that copies raw frames into a
    TAP device must finish the checksum itself, or the receiving stack drops
    every TCP segment (while ping, whose checksum is computed in software,
    still works).
    """
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return frame
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    total_len = struct.unpack("!H", frame[16:18])[0]
    start, end = 14 + ihl, 14 + total_len
    offset = {6: 16, 17: 6}.get(proto)
    if offset is None or end > len(frame) or end - start < offset + 2:
        return frame
    segment = bytearray(frame[start:end])
    segment[offset:offset + 2] = b"\0\0"
    pseudo = frame[26:34] + struct.pack("!BBH", 0, proto, len(segment))
    checksum = internet_checksum(pseudo + bytes(segment))
    if proto == 17 and checksum == 0:
        checksum = 0xFFFF
    segment[offset:offset + 2] = struct.pack("!H", checksum)
    return frame[:start] + bytes(segment) + frame[end:]


@dataclass(frozen=True)
class Failover:
    before: str | None
    after: str | None
    at: float
    reason: str


@dataclass
class Bond:
    mode: str
    members: list[str]
    hash_policy: str = "layer2"
    up: dict[str, bool] = field(default_factory=dict)
    active: str | None = None
    _next: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown bonding mode {self.mode!r}; expected one of {', '.join(MODES)}")
        if self.hash_policy not in HASH_POLICIES:
            raise ValueError(f"unknown xmit_hash_policy {self.hash_policy!r}; expected one of {', '.join(HASH_POLICIES)}")
        if not self.members:
            raise ValueError("a bond needs at least one member")
        for m in self.members:
            self.up.setdefault(m, True)
        self.active = self._first_up() if self.mode == ACTIVE_BACKUP else None

    def _first_up(self, after: str | None = None) -> str | None:
        order = self.members
        if after in order:  # the next one after the failed member, wrapping around
            i = order.index(after)
            order = order[i + 1:] + order[:i + 1]
        return next((m for m in order if self.up[m]), None)

    def link(self, member: str, up: bool, now: float) -> Failover | None:
        """MII monitoring saw a carrier change; in active-backup this may move the active member."""
        if member not in self.up:
            raise ValueError(f"{member!r} is not a member of this bond ({', '.join(self.members)})")
        self.up[member] = up
        if self.mode != ACTIVE_BACKUP:
            return None
        if not up and member == self.active:
            before, self.active = self.active, self._first_up(after=member)
            return Failover(before, self.active, now, f"link of {member} down")
        if up and self.active is None:
            self.active = member
            return Failover(None, member, now, f"link of {member} up")
        return None

    def up_members(self) -> list[str]:
        return [m for m in self.members if self.up[m]]

    def transmit(self, frame: bytes) -> list[str]:
        """The member(s) that send this frame (none when every link is down)."""
        live = self.up_members()
        if not live:
            return []
        if self.mode == ACTIVE_BACKUP:
            return [self.active] if self.active else []
        if self.mode == BROADCAST:
            return live
        if self.mode == BALANCE_RR:
            member = live[self._next % len(live)]
            self._next += 1
            return [member]
        h = layer2_hash(frame) if self.hash_policy == "layer2" else layer34_hash(frame)
        return [live[h % len(live)]]

    def accepts(self, member: str) -> bool:
        """May a frame received on ``member`` go up to the host? (active-backup: only the active one)"""
        if self.mode == ACTIVE_BACKUP:
            return member == self.active
        return self.up.get(member, False)
