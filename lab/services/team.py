"""Bond/team agent: one interface over two (or more) links, kernel or userspace.

``impl = "kernel"`` builds a Linux bond (``ip link add type bond``) and only
watches it, reporting member links and failovers as events. Where the kernel
has no bonding module (this course's CI machine), ``impl = "userspace"`` does
the bonding itself, so the lesson still runs:

- a TAP interface ``bond0`` carries the host's IP and MAC: the host's TCP/IP
  stack writes frames into it and reads frames from it;
- an AF_PACKET socket per member link sends and receives raw frames;
- ``lab.core.bonding.Bond`` decides which member sends each frame and which
  members' frames are delivered (active-backup, balance-rr, balance-xor,
  broadcast);
- MII monitoring: every ``miimon`` seconds the members' carrier is read from
  /sys; when the active member's link drops, the next one takes over and a
  gratuitous ARP tells the switches where the MAC lives now.

Events: bond_ready, member_link (member, up), bond_failover (before, after).
Config keys: node, impl, name, members, mode, hash_policy, miimon, address, events, control.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

from lab.core import vrrp_packet
from lab.core.bonding import Bond, complete_checksum
from lab.core.scenario import BondSettings
from lab.core.schema import from_config
from lab.services.runtime import Context, serve

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_CSUMNOTREADY = 1 << 3  # the sender left the TCP/UDP checksum to "hardware"
AUX_SPACE = socket.CMSG_SPACE(20)  # struct tpacket_auxdata
GARP_REPEAT = 3


def carrier(iface: str) -> bool:
    try:
        return Path(f"/sys/class/net/{iface}/carrier").read_text().strip() == "1"
    except OSError:  # reading carrier of a downed interface fails with EINVAL
        return False


async def run_ip(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec("ip", *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {err.decode(errors='replace').strip()}")


class UserspaceTeam:
    def __init__(self, ctx: Context) -> None:
        cfg = ctx.config
        self.ctx = ctx
        self.settings = s = from_config(BondSettings, cfg)  # the scenario's [bond], rebuilt
        self.name = cfg["name"]
        self.members = list(cfg["members"])
        self.bond = Bond(s.mode, self.members, s.xmit_hash_policy)
        self.miimon = s.miimon
        self.address = cfg["address"]
        self.mac = Path(f"/sys/class/net/{self.members[0]}/address").read_text().strip()
        self.mac_bytes = bytes.fromhex(self.mac.replace(":", ""))
        self.tx = {m: 0 for m in self.members}
        self.rx = {m: 0 for m in self.members}
        self.dropped = 0
        self.tap = -1
        self.socks: dict[str, socket.socket] = {}
        ctx.commands["stats"] = lambda req: {"impl": "userspace", "mode": self.bond.mode, "active": self.bond.active,
                                             "up": dict(self.bond.up), "tx": dict(self.tx), "rx": dict(self.rx), "dropped": self.dropped}

    async def setup(self) -> None:
        self.tap = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(self.tap, TUNSETIFF, struct.pack("16sH", self.name.encode(), IFF_TAP | IFF_NO_PI))
        for m in self.members:
            await run_ip("addr", "flush", "dev", m)  # the bond carries the address now
            await run_ip("link", "set", m, "promisc", "on", "up")
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sock.bind((m, 0))
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.setblocking(False)
            self.socks[m] = sock
        await run_ip("link", "set", self.name, "address", self.mac)
        await run_ip("addr", "add", self.address, "dev", self.name)
        await run_ip("link", "set", self.name, "up")
        loop = asyncio.get_running_loop()
        loop.add_reader(self.tap, self.from_host)
        for m, sock in self.socks.items():
            loop.add_reader(sock.fileno(), self.from_wire, m)

    def from_host(self) -> None:
        """Frames the host sends: out through the member(s) the mode picks."""
        while True:
            try:
                frame = os.read(self.tap, 65535)
            except BlockingIOError:
                return
            members = self.bond.transmit(frame)
            if not members:
                self.dropped += 1
            for m in members:
                try:
                    self.socks[m].send(frame)
                    self.tx[m] += 1
                except OSError:  # the link went down before MII monitoring noticed
                    self.dropped += 1

    def from_wire(self, member: str) -> None:
        """Frames arriving on a member: up to the host if the mode accepts that member."""
        sock = self.socks[member]
        while True:
            try:
                frame, ancillary, _, addr = sock.recvmsg(65535, AUX_SPACE)
            except BlockingIOError:
                return
            except OSError:  # ENETDOWN once when the link drops: reading it clears the error
                return
            if addr[2] == PACKET_OUTGOING or frame[6:12] == self.mac_bytes:
                continue  # our own frames, seen going out or coming back through the other switch
            if not self.bond.accepts(member):
                continue
            for level, kind, data in ancillary:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and struct.unpack("I", data[:4])[0] & TP_STATUS_CSUMNOTREADY:
                    frame = complete_checksum(frame)
            self.rx[member] += 1
            os.write(self.tap, frame)

    def garp(self, member: str) -> None:
        ip = self.address.split("/")[0]
        for _ in range(GARP_REPEAT):
            try:
                self.socks[member].send(vrrp_packet.garp(self.mac, ip))
            except OSError:
                return
        self.ctx.log.emit("garp_sent", member=member, mac=self.mac, address=ip, count=GARP_REPEAT)

    async def monitor(self) -> None:
        while True:
            for m in self.members:
                up = carrier(m)
                if up == self.bond.up[m]:
                    continue
                failover = self.bond.link(m, up, time.time())
                self.ctx.log.emit("member_link", member=m, up=up)
                if failover is not None:
                    self.ctx.log.emit("bond_failover", before=failover.before, after=failover.after, reason=failover.reason)
                    if failover.after:
                        self.garp(failover.after)
            await asyncio.sleep(self.miimon)


class KernelBond:
    """A real Linux bond; this process only reports what it does."""

    def __init__(self, ctx: Context) -> None:
        cfg = ctx.config
        self.ctx = ctx
        self.settings = from_config(BondSettings, cfg)  # the scenario's [bond], rebuilt
        self.name = cfg["name"]
        self.members = list(cfg["members"])
        self.mode = self.settings.mode
        self.cfg = cfg
        self.up = {m: True for m in self.members}
        self.active: str | None = None
        ctx.commands["stats"] = lambda req: {"impl": "kernel", "mode": self.mode, "active": self.active, "up": dict(self.up)}

    async def setup(self) -> None:
        extra = ["xmit_hash_policy", self.settings.xmit_hash_policy] if self.mode == "balance-xor" else []
        await run_ip("link", "add", self.name, "type", "bond", "mode", self.mode, "miimon", str(round(self.settings.miimon * 1000)), *extra)
        for m in self.members:
            await run_ip("link", "set", m, "down")
            await run_ip("addr", "flush", "dev", m)
            await run_ip("link", "set", m, "master", self.name)
        await run_ip("addr", "add", self.cfg["address"], "dev", self.name)
        await run_ip("link", "set", self.name, "up")
        self.active = self.read_active()

    def read_active(self) -> str | None:
        try:
            return Path(f"/sys/class/net/{self.name}/bonding/active_slave").read_text().strip() or None
        except OSError:
            return None

    async def monitor(self) -> None:
        while True:
            for m in self.members:
                up = carrier(m)
                if up != self.up[m]:
                    self.up[m] = up
                    self.ctx.log.emit("member_link", member=m, up=up)
            active = self.read_active()
            if active != self.active and self.mode == "active-backup":
                self.ctx.log.emit("bond_failover", before=self.active, after=active, reason="kernel bonding")
                self.active = active
            await asyncio.sleep(self.settings.miimon / 2)


async def main(ctx: Context) -> None:
    team: Any = KernelBond(ctx) if ctx.config["impl"] == "kernel" else UserspaceTeam(ctx)
    await team.setup()
    monitor = ctx.spawn(team.monitor(), "monitor")
    ctx.ready(impl=ctx.config["impl"], mode=team.settings.mode, members=team.members, name=team.name)
    try:
        await ctx.stopping.wait()
    finally:
        monitor.cancel()


if __name__ == "__main__":
    serve(main)
