"""VRRPv3 speaker: holds the virtual IP while this node is MASTER.

Drives the election state table (``lab.core.vrrp``) with real packets: IP
protocol 112 to 224.0.0.18 with TTL 255 on the node's LAN interface. On
becoming MASTER it adds the VIP to the interface (one rtnetlink message, as
keepalived does, not an `ip` process) and sends five gratuitous
ARPs (keepalived's ``garp_master_repeat`` default), so clients and the
switch learn the VIP's new MAC at once; on becoming BACKUP or stopping it
removes the VIP. SIGTERM is a graceful stop: one advert with priority 0.

Tracking (keepalived ``track_script`` with ``init_fail``): every
``track_interval`` seconds it asks the local balancer ``GET /halab-ready``,
which answers 200 only while the balancer has a server it can use. The
answers feed an HAProxy-style rise/fall counter (``lab.core.health``) that
starts DOWN: until the balancer is ready the priority stays lowered by
``track_weight``, and after ``track_fall`` failures it drops again. So a
node whose balancer died, or cannot reach any origin, hands the VIP over
even though its VRRP is alive, and a node that comes back (power on,
restart) does not take the VIP back before it can serve.

Every state change, VIP move, GARP and priority change is an event; the
first advert from each new master is one too (``vrrp_master_seen``).

A pulled cable makes ``sendto`` fail (network unreachable, no buffer
space). That is a fault, not a bug: the speaker records
``advert_send_failed`` once per streak, keeps its timers running and
advertises again the moment the cable is back, so a returning master that
hears a better one steps down within one advert interval, as keepalived
does. Every loop runs under the service supervisor (``Context.spawn``).

Config keys: node, interface, address, vip, prefix, vrid, priority,
advert_interval, preempt, preempt_delay, track_port, track_interval,
track_fall, track_rise, track_weight, events, control.
"""
from __future__ import annotations

import asyncio
import socket
import struct
import time
from pathlib import Path
from typing import Any

from lab.core import vrrp_packet as wire
from lab.core.health import READY_PATH, HealthSettings
from lab.core.scenario import VrrpSettingsSpec
from lab.core.schema import from_config
from lab.core.vrrp import (
    DROP_VIP,
    GARP_REFRESH,
    MASTER,
    SEND_ADVERT,
    SEND_GARP,
    TAKE_VIP,
    Action,
    BackupTimer,
    RfcTimer,
    Vrrp,
    VrrpSettings,
)
from lab.services import rx_stamps
from lab.services.healthcheck import HealthChecker, Probe, Target
from lab.services.netlink import Addresses
from lab.services.runtime import Context, serve, transient

GARP_REPEAT = 5  # keepalived vrrp_garp_master_repeat default
SPIN = 0.002  # seconds before the Master_Down deadline the timer stops sleeping and watches the clock (see timers)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def timer_of(name: str) -> BackupTimer:
    """RFC 5798's timer, or the student's class the scenario named (resolved and tried when the scenario was read)."""
    if name == "rfc5798":
        return RfcTimer()
    from lab.core.plugins import BACKUP_TIMER, load

    return load(name, BACKUP_TIMER)()


class Speaker:
    def __init__(self, ctx: Context) -> None:
        cfg = ctx.config
        self.ctx = ctx
        self.iface = cfg["interface"]
        self.address = cfg["address"]
        self.vip = cfg["vip"]
        self.prefix = cfg["prefix"]
        self.base_priority = cfg["priority"]
        v = from_config(VrrpSettingsSpec, cfg)  # the scenario's [vrrp], rebuilt; the rest is this node's part in it
        self.machine = Vrrp(VrrpSettings(cfg["vrid"], self.base_priority, v.advert_interval, v.preempt, self.address, v.preempt_delay,
                                                 v.garp_refresh),
                            timer=timer_of(v.backup_timer))
        self.track_port = cfg["track_port"]  # 0: no tracking
        self.track_interval = v.track_interval
        self.track_weight = v.track_weight if self.track_port else 0
        # keepalived's script rise/fall, starting failed (init_fail): not ready until a probe says so. The
        # shared checker, without events of its own: its verdicts are the priority_changed events below.
        self.ready_target = Target("local balancer", "127.0.0.1", self.track_port)
        settings = HealthSettings(v.track_rise, v.track_fall, self.track_interval,
                                  timeout=min(1.0, self.track_interval))
        self.checker = HealthChecker([self.ready_target], settings, Probe("http", READY_PATH), start_up=False)
        self.tracker = self.checker.counters[self.ready_target.name]
        self.wake = asyncio.Event()
        self.adverts_sent = self.adverts_seen = self.bad_adverts = 0
        self.send_failures = 0  # adverts lost in the current streak of send errors (0: sending works)
        self.sock = self._multicast_socket()
        self.addresses = Addresses()
        self.mac = Path(f"/sys/class/net/{self.iface}/address").read_text().strip()
        # Opened once, bound to the interface (its index outlives a cable pulled and plugged back):
        # a takeover sends its GARPs without making a socket first.
        self.garp_frame = wire.garp(self.mac, self.vip)
        self.raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.raw.bind((self.iface, 0))
        ctx.commands["stats"] = lambda req: self.statistics()

    def statistics(self) -> dict[str, Any]:
        m = self.machine
        age = None if m.last_advert is None else round(time.time() - m.last_advert, 3)
        return {"state": m.state, "priority": m.priority, "master": m.master, "vip": self.vip, "holds_vip": m.state == MASTER,
                "last_advert_age": age, "adverts_sent": self.adverts_sent, "adverts_seen": self.adverts_seen,
                "bad_adverts": self.bad_adverts, "master_down_interval": round(m.down_interval, 4)}

    def _multicast_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, wire.PROTO)
        ifindex = socket.if_nametoindex(self.iface)
        group = socket.inet_aton(wire.GROUP)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group + socket.inet_aton(self.address) + struct.pack("i", ifindex))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(self.address))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)  # RFC 5798: receivers drop TTL != 255
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.iface.encode())
        rx_stamps.enable(sock)  # the Master_Down timer restarts when an advert arrived, not when it was read
        sock.setblocking(False)
        return sock

    async def recv_stamped(self) -> tuple[bytes, float]:
        """The next packet and when it counts as heard: the kernel's time of its arrival unless the speaker was
        behind by more than an advert interval (``rx_stamps.heard_at``); ``loop.sock_recv`` has no ancillary data."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                packet, ancillary, _, _ = self.sock.recvmsg(2048, rx_stamps.ANCILLARY_SPACE)
            except BlockingIOError:
                readable = loop.create_future()
                loop.add_reader(self.sock, _wake, readable)
                try:
                    await readable
                finally:
                    loop.remove_reader(self.sock)
                continue
            return packet, rx_stamps.heard_at(rx_stamps.arrival(ancillary), time.time(), self.machine.settings.advert_interval)

    # ---- doing what the state machine says -------------------------------------------------
    async def perform(self, actions: list[Action]) -> None:
        taken: tuple[float, str] | None = None
        for action in actions:
            if action.kind == SEND_ADVERT:
                self.send_advert(action.priority)
            elif action.kind == TAKE_VIP:
                await self.ip("add")
                taken = (time.time(), action.reason)  # said after the GARPs: nothing between the VIP and its announcement
            elif action.kind == SEND_GARP:
                self.send_garp(1 if action.reason == GARP_REFRESH else GARP_REPEAT)  # keepalived's refresh repeat: 1
            elif action.kind == DROP_VIP:
                await self.ip("del")
                self.ctx.log.emit("vip_released", vip=self.vip, reason=action.reason)
        if taken is not None:
            self.ctx.log.emit("vip_taken", t=taken[0], vip=self.vip, reason=taken[1])
        self.report_changes()

    def send_advert(self, priority: int) -> None:
        advert = wire.Advert(self.machine.settings.vrid, priority, self.machine.settings.advert_interval, (self.vip,))
        try:
            self.sock.sendto(wire.encode(advert, self.address), (wire.GROUP, 0))
        except OSError as e:
            if not transient(e):
                raise
            if not self.send_failures:  # once per streak: a cable out for 10 s at 0.03 s adverts is one event, not 300
                self.ctx.log.emit("advert_send_failed", error=e.strerror or str(e), errno=e.errno, state=self.machine.state)
            self.send_failures += 1
            return
        if self.send_failures:
            self.ctx.log.emit("advert_send_recovered", lost=self.send_failures, state=self.machine.state)
            self.send_failures = 0
        self.adverts_sent += 1

    def send_garp(self, count: int) -> None:
        try:
            for _ in range(count):
                self.raw.send(self.garp_frame)
        except OSError as e:
            if not transient(e):
                raise
            self.ctx.log.emit("garp_failed", vip=self.vip, error=e.strerror or str(e), errno=e.errno)
            return
        self.ctx.log.emit("garp_sent", vip=self.vip, mac=self.mac, count=count)

    async def ip(self, verb: str) -> None:
        """Add or remove the VIP by rtnetlink (``lab.services.netlink``): no process on the takeover path."""
        try:
            self.addresses.change(verb, self.iface, self.vip, self.prefix)
        except OSError as e:
            self.ctx.log.emit("vip_error", verb=verb, error=str(e))

    def report_changes(self) -> None:
        while self.machine.changes:
            c = self.machine.changes.pop(0)
            self.ctx.log.emit("vrrp_state_changed", t=c.at, vrid=self.machine.settings.vrid, before=c.before, after=c.after,
                              reason=c.reason, priority=self.machine.priority, vip=self.vip)

    # ---- the three loops ---------------------------------------------------------------
    async def receive(self) -> None:
        master = None
        while True:
            try:
                packet, now = await self.recv_stamped()
            except OSError as e:
                if not transient(e):
                    raise
                await asyncio.sleep(self.machine.settings.advert_interval)  # the link is down; the timers run on
                continue
            try:
                src, ttl, advert = wire.decode_ip(packet)
            except wire.BadAdvert as e:
                self.bad_adverts += 1
                self.ctx.log.emit("vrrp_bad_advert", error=str(e))
                continue
            if src == self.address or advert.vrid != self.machine.settings.vrid:
                continue
            if ttl != 255:
                self.bad_adverts += 1
                self.ctx.log.emit("vrrp_bad_advert", error=f"TTL {ttl} from {src} (must be 255: sent from another link?)")
                continue
            self.adverts_seen += 1
            if src != master and advert.priority > 0:
                master = src
                self.ctx.log.emit("vrrp_master_seen", source=src, priority=advert.priority, interval=advert.interval)
            await self.perform(self.machine.advert(now, advert.priority, src, advert.interval))
            self.wake.set()

    async def timers(self) -> None:
        """Wait for the next deadline (or an advert that moves it), then let the state machine act.

        The event loop's timers fire up to a millisecond late. For the one
        deadline whose every millisecond is outage, a BACKUP's
        Master_Down_Interval, the wait ends ``SPIN`` early and the rest is
        spent yielding to the loop until the deadline is reached (adverts are
        still read meanwhile). Measured at 0.03 s adverts: the takeover timer
        fired 0.7 ms after keepalived's without this.
        """
        while True:
            deadline = self.machine.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            precise = deadline is not None and deadline == self.machine.master_down_at
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout if timeout is None or not precise else max(0.0, timeout - SPIN))
            except asyncio.TimeoutError:
                if precise:
                    while time.time() < deadline and not self.wake.is_set():
                        await asyncio.sleep(0)
            await self.perform(self.machine.tick(time.time()))

    async def heartbeat(self, every: float = 1.0) -> None:
        """Once a second: what this speaker believes, and how old its latest advert is (the live view's heartbeat line)."""
        while True:
            await asyncio.sleep(every)
            s = self.statistics()
            self.ctx.log.emit("vrrp_heartbeat", vip=self.vip, state=s["state"], master=s["master"], priority=s["priority"],
                              last_advert_age=s["last_advert_age"])

    def tracked_priority(self) -> int:
        if self.base_priority == 255:  # the address owner never changes its priority (RFC 5798)
            return 255
        return self.base_priority if self.tracker.up else max(1, self.base_priority - self.track_weight)

    async def track_once(self, startup: bool = False) -> None:
        _, detail, _ = await self.checker.check_once(self.ready_target)
        wanted = self.tracked_priority()
        if wanted == self.machine.priority:
            return
        reason = f"local balancer {'ready' if self.tracker.up else 'not ready'} ({detail})"
        self.ctx.log.emit("priority_changed", priority=wanted, reason=reason, startup=startup)
        if self.machine.state == "INIT":
            self.machine.priority = wanted  # before the election: just the priority it starts with
        else:
            await self.perform(self.machine.set_priority(wanted, time.time()))
            self.wake.set()

    async def track(self) -> None:
        while True:
            await asyncio.sleep(self.track_interval)
            await self.track_once()


async def main(ctx: Context) -> None:
    speaker = Speaker(ctx)
    if speaker.track_port:  # start with the priority the balancer's readiness gives, not a hopeful one
        await speaker.track_once(startup=True)
    tasks = [ctx.spawn(speaker.receive(), "receive")]
    await speaker.perform(speaker.machine.start(time.time()))
    ctx.ready(vip=speaker.vip, priority=speaker.machine.priority, interface=speaker.iface,
              master_down_interval=round(speaker.machine.down_interval, 4), backup_timer=speaker.machine.timer.name)
    tasks.append(ctx.spawn(speaker.timers(), "timers"))
    tasks.append(ctx.spawn(speaker.heartbeat(), "heartbeat"))
    if speaker.track_port:
        tasks.append(ctx.spawn(speaker.track(), "track"))
    try:
        await ctx.stopping.wait()
    finally:
        for task in tasks:
            task.cancel()
        if speaker.machine.state != "INIT":
            await speaker.perform(speaker.machine.shutdown(time.time()))


if __name__ == "__main__":
    serve(main)
