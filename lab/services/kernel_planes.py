"""The L4 balancer's kernel data planes, kept equal to its control plane's view.

- ``NatPlane``: an nftables NAT table (``lab.core.l4.ruleset``) replaced whole
  in one ``nft -f`` transaction on every change; conntrack pins established
  flows, ``flush_on_down`` deletes a DOWN backend's; ``l4_flows`` reports
  what conntrack holds per backend once a second (when it changes).
- ``DsrPlane``: direct server return, a netdev-ingress table of MAC addresses
  (``lab.core.l4.dsr_ruleset``), stateless.
- ``IpvsPlane``: the kernel's IPVS through ipvsadm, where the kernel has it.

Every change goes through one queue and one loop (``keep``), so the kernel
sees the changes in the order they happened, one transaction at a time.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from typing import Any

from lab.core.l4 import LOOKUPS, TABLE, Backend, L4Settings, dsr_ruleset, eligible, ipvs_rules, moved, ruleset, shares, slot_table
from lab.events import EventLog

SAMPLE = range(0, 2**32, 2**32 // 20011)  # hash values spread evenly over jhash's range, to measure a table change
FLOW = re.compile(r"\s(\w+) src=\S+ dst=\S+ sport=\d+ dport=\d+ .*?src=(\S+) dst=\S+ sport=(\d+)")


async def run(*argv: str, stdin: str | None = None, nothing_found: bool = False, tolerate: str = "0 flow entries") -> str:
    """A command in this node's namespace; its output, or an OSError saying what it printed.

    ``nothing_found``: a failure saying ``tolerate`` is an answer (conntrack -D found nothing to delete)."""
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    if proc.returncode != 0 and not (nothing_found and tolerate.encode() in err):
        raise OSError(f"{' '.join(argv[:2])} failed: {err.decode(errors='replace').strip()}")
    return out.decode() + err.decode()


class NatPlane:
    """The kernel's table, kept equal to the health checker's view."""

    def __init__(self, settings: L4Settings, address: str, backends: list[Backend], log: EventLog) -> None:
        self.settings = settings
        self.address = address
        self.backends = backends
        self.by_address = {b.address: b.name for b in backends}
        self.log = log
        self.up = {b.name: True for b in backends}
        self.slots: list[Backend] = []
        self.drained: set[str] = set()  # an operator's drain (or weight 0): no new flows, established ones go on
        # health verdicts (name, up) and operator changes (name, None), applied in the order they came
        self.changes: asyncio.Queue[tuple[str, bool | None]] = asyncio.Queue()

    def health_changed(self, name: str, up: bool) -> None:
        self.changes.put_nowait((name, up))

    def set_server(self, req: dict[str, Any]) -> dict[str, Any]:
        """The operator's command (the CLI's drain and undrain): ``weight`` and ``drain`` of one server."""
        name = req["server"]
        if name not in self.up:
            raise ValueError(f"no server {name!r} (servers: {', '.join(self.up)})")
        if "weight" in req:
            self.backends = [dataclasses.replace(b, weight=int(req["weight"])) if b.name == name else b for b in self.backends]
        if "drain" in req:
            (self.drained.add if req["drain"] else self.drained.discard)(name)
        self.log.emit("server_changed", server=name, **{k: req[k] for k in ("weight", "drain") if k in req})
        self.changes.put_nowait((name, None))
        return {"server": name, "drain": name in self.drained, "weight": next(b.weight for b in self.backends if b.name == name)}

    def taking_new_flows(self) -> dict[str, bool]:
        return {name: up and name not in self.drained for name, up in self.up.items()}

    async def keep(self) -> None:
        """The one loop that changes the kernel's table: one nft transaction at a time.

        A change the kernel refuses for now (DSR's route to the origins is
        gone while this node's cable is pulled) is tried again each second
        until it goes through: the loop outlives every fault."""
        while True:
            name, up = await self.changes.get()
            while True:
                try:
                    if up is None:
                        await self.apply(f"{name} changed by the operator")
                    else:
                        await self.changed(name, up)
                    break
                except OSError as e:
                    self.log.emit("daemon_said", line=f"table not changed yet ({name}): {e}; trying again in 1 s")
                    await asyncio.sleep(1.0)

    async def apply(self, reason: str) -> None:
        slots = slot_table(self.settings.algorithm, self.backends, self.taking_new_flows(), self.settings.table_size)
        started = time.monotonic()
        slots, text = await self.render(slots)
        await run("nft", "-f", "-", stdin=text)
        # for a hashed lookup, how much of the hash space now leads elsewhere: the clients that a change moves
        hashed = LOOKUPS[self.settings.algorithm].startswith("jhash") and self.slots and slots
        share = round(moved(self.slots, slots, SAMPLE), 4) if hashed else None
        self.slots = slots
        self.log.emit("l4_table", slots=shares(slots), size=len(slots), reason=reason, took=round(time.monotonic() - started, 4),
                      moved=share)

    async def render(self, slots: list[Backend]) -> tuple[list[Backend], str]:
        return slots, ruleset(self.address, self.settings.port, self.settings.algorithm, slots)

    async def changed(self, name: str, up: bool) -> None:
        self.up[name] = up
        await self.apply(f"{name} {'UP' if up else 'DOWN'}")
        if not up and self.settings.flush_on_down:
            backend = next(b for b in self.backends if b.name == name)
            out = await run("conntrack", "-D", "-p", "tcp", "--reply-src", backend.address, "--reply-port-src", str(backend.port),
                            "--orig-dst", self.address, "--orig-port-dst", str(self.settings.port), nothing_found=True)
            found = re.search(r"(\d+) flow entries have been deleted", out)
            self.log.emit("flows_flushed", server=name, flows=int(found.group(1)) if found else 0)

    async def flows(self) -> dict[str, int]:
        """Established flows conntrack holds to this balancer, per backend (what a table change cannot move)."""
        out = await run("conntrack", "-L", "-p", "tcp", "--orig-dst", self.address, "--orig-port-dst", str(self.settings.port))
        counts = {b.name: 0 for b in self.backends}
        for state, reply_src, _ in FLOW.findall(out):
            name = self.by_address.get(reply_src)
            if name is not None and state == "ESTABLISHED":
                counts[name] += 1
        return counts

    async def watch_flows(self) -> None:
        last: dict[str, int] | None = None
        while True:
            await asyncio.sleep(1.0)
            try:
                counts = await self.flows()
            except OSError as e:
                self.log.emit("daemon_said", line=f"conntrack: {e}")
                continue
            if counts != last:
                self.log.emit("l4_flows", flows=counts, total=sum(counts.values()))
                last = counts

    async def remove(self) -> None:
        await run("nft", "delete", "table", "ip", TABLE)


class DsrPlane(NatPlane):
    """Direct server return: the same control plane, a stateless table of MAC addresses at the front interface's ingress."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.macs: dict[str, str] = {}

    async def interface(self, *route: str) -> str:
        found = json.loads(await run("ip", "-j", *route))
        return str(found[0]["dev"] if "dev" in found[0] else found[0]["ifname"])

    async def mac_of(self, backend: Backend) -> str | None:
        """The backend's MAC from the neighbour table, asking for it (one ping) when it is not there yet."""
        for attempt in (1, 2):
            for entry in json.loads(await run("ip", "-j", "neigh", "show", "to", backend.address)):
                if entry.get("lladdr") and "FAILED" not in entry.get("state", []):
                    return str(entry["lladdr"])
            if attempt == 1:
                try:
                    await run("ping", "-c", "1", "-W", "1", backend.address)  # its answer leaves the MAC in the table
                except OSError:
                    return None  # no answer, no route: this backend cannot be steered to now
        return None

    async def render(self, slots: list[Backend]) -> tuple[list[Backend], str]:
        missing = set()
        for b in {b.name: b for b in slots}.values():
            mac = await self.mac_of(b)
            if mac is None:
                missing.add(b.name)
                self.log.emit("daemon_said", line=f"no MAC address for {b.name} ({b.address}): left out of the table")
            else:
                self.macs[b.name] = mac
        if missing:  # steer nothing to a MAC nobody answers for: the table is made again without those
            slots = slot_table(self.settings.algorithm, self.backends, {**self.taking_new_flows(), **{n: False for n in missing}},
                               self.settings.table_size)
        ingress = await self.interface("-4", "addr", "show", "to", f"{self.address}/32")
        egress = await self.interface("route", "get", self.backends[0].address)
        return slots, dsr_ruleset(self.address, self.settings.port, self.settings.algorithm, slots, self.macs, ingress, egress)

    async def changed(self, name: str, up: bool) -> None:
        self.up[name] = up
        await self.apply(f"{name} {'UP' if up else 'DOWN'}")  # no flows to flush: DSR keeps no state

    async def remove(self) -> None:
        await run("nft", "delete", "table", "netdev", TABLE)


class IpvsPlane(NatPlane):
    """The kernel's IPVS, driven with ipvsadm from the same settings: real servers added and removed as health says.

    (Not runnable on the course VM, whose kernel has no IPVS: ``lab.net.features``
    refuses it there before anything is built.)
    """

    def __init__(self, settings: L4Settings, address: str, backends: list[Backend], log: EventLog, mode: str) -> None:
        super().__init__(settings, address, backends, log)
        self.mode = mode
        self.service = f"{address}:{settings.port}"
        self.current: dict[str, str] = {}  # server name -> its '-a' line

    async def apply(self, reason: str) -> None:
        started = time.monotonic()
        taking = self.taking_new_flows()
        head, *servers = ipvs_rules(self.address, self.settings.port, self.settings.algorithm, self.mode, self.backends, taking)
        wanted = {name: line for name, line in zip([s.name for s in eligible(self.backends, taking)], servers)}
        lines = []
        if not self.current and reason == "start":
            await run("ipvsadm", "-D", "-t", self.service, nothing_found=True, tolerate="No such service")
            if self.settings.flush_on_down:  # a removed real server's connections expire at their next packet
                await run("sysctl", "-q", "-w", "net.ipv4.vs.expire_nodest_conn=1")
            lines.append(head)
        gone = [b for b in self.backends if b.name in self.current and b.name not in wanted]
        lines += [f"-d -t {self.service} -r {b.address}:{b.port}" for b in gone]
        lines += [line for n, line in wanted.items() if n not in self.current]
        await run("ipvsadm-restore", stdin="\n".join(lines) + "\n")
        self.current = wanted
        self.log.emit("l4_table", slots={n: 1 for n in wanted}, size=len(wanted), reason=reason,
                      took=round(time.monotonic() - started, 4), moved=None)

    async def changed(self, name: str, up: bool) -> None:
        self.up[name] = up
        await self.apply(f"{name} {'UP' if up else 'DOWN'}")

    async def flows(self) -> dict[str, int]:
        """Active connections per real server (ipvsadm's ActiveConn column)."""
        out = await run("ipvsadm", "-L", "-n", "-t", self.service)
        counts = {b.name: 0 for b in self.backends}
        for address, active in re.findall(r"->\s+(\S+):\d+\s+\S+\s+\d+\s+(\d+)", out):
            if address in self.by_address:
                counts[self.by_address[address]] = int(active)
        return counts

    async def remove(self) -> None:
        await run("ipvsadm", "-D", "-t", self.service)
