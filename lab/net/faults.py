"""Breaking things on purpose, and putting them back exactly.

Each fault acts on the running lab and returns a ``FaultChange`` saying what it
did (which interfaces went down, which processes were killed or frozen),
also written to the event log as ``fault_applied``/``fault_reverted``. The
``Faults`` object remembers what is broken, so ``restore()`` undoes exactly
that and nothing else (IPMininet's ``runFailurePlan``/``restoreIntfs`` idea).

- link_down / link_up: both ends of the link set down/up (carrier lost, as
  if the cable were pulled); the kernel keeps TCP state, so nothing is reset.
  An interface set down loses the routes through it; link_up (and poweron)
  put back the routes the node was built with (a default route via a router).
- crash / restart: SIGKILL every halab service on the node; restart starts
  the same processes again with the same config.
- poweroff / poweron: the whole node dies (services killed, every interface
  down) and boots again (interfaces up without any VIP it held, services
  started afresh). Unlike ``crash``, nothing of it answers ARP meanwhile.
- pause / resume: SIGSTOP / SIGCONT. The kernel still answers ping and even
  completes TCP handshakes for a frozen process: the gray failure.
"""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Any

from lab.core.faults import ACTIONS, BROKEN_SETS, LINK, NONE, REPAIR_OF, REPAIRS
from lab.core.roles import SERVICE_ROLES
from lab.core.timeline import resolve_link, resolve_pair
from lab.net.lab import CRASHED, PAUSED, RUNNING, Lab, LabError


@dataclass(frozen=True)
class FaultChange:
    action: str
    target: str
    affects: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.details.items())
        return f"{self.action} {self.target}" + (f" ({extra})" if extra else "")


class Faults:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.down: dict[str, tuple[str, str]] = {}  # "a-b" -> link
        self.crashed: set[str] = set()
        self.paused: set[str] = set()
        self.erroring: set[str] = set()  # origins answering 500s (a bad deploy)
        self.off: set[str] = set()
        self.cut: set[str] = set()  # "a/b" pairs that cannot reach each other
        self.hijacking: dict[str, Any] = {}  # attacker host -> its forging process
        self.arp_spoofing: dict[str, Any] = {}  # attacker host -> its forged-ARP process
        self.flooding: dict[str, Any] = {}  # "attacker/victim" -> the flooding process
        self.http_flooding: dict[str, Any] = {}  # "attacker/victim" -> the HTTP flood's process
        self.slowing: dict[str, Any] = {}  # "attacker/victim" -> the slowloris process

    # ---- helpers ---------------------------------------------------------------------
    def _link(self, target: str) -> tuple[str, str]:
        link = resolve_link(target, self.lab.scenario.layout)
        if isinstance(link, str):
            raise LabError(link)
        return link

    def _node(self, target: str) -> str:
        nodes = self.lab.scenario.layout.nodes
        if target not in nodes:
            raise LabError(f"no node named {target!r} (nodes: {', '.join(sorted(nodes))})")
        if not self.lab.services_on(target):
            raise LabError(f"{target!r} runs no halab service to crash, pause or restart")
        return target

    def _affects(self, nodes: tuple[str, ...]) -> tuple[str, ...]:
        roles = self.lab.scenario.layout.nodes
        return tuple(n for n in nodes if roles.get(n) in SERVICE_ROLES)

    def _record(self, change: FaultChange, began: float, note: str = "") -> FaultChange:
        # Stamped with the moment the action began: the kill or the cable pull
        # happens before the call returns, and requests failing in between
        # must not look as if they failed before the fault.
        self.lab.event("fault_reverted" if change.action in REPAIRS else "fault_applied", t=began, action=change.action, target=change.target, affects=list(change.affects), note=note, **change.details)
        return change

    def _set_link(self, link: tuple[str, str], status: str) -> list[str]:
        a, b = self.lab.net[link[0]], self.lab.net[link[1]]
        names = []
        for intf_a, intf_b in a.connectionsTo(b):
            for intf in (intf_a, intf_b):
                out = intf.ifconfig(status)
                if out.strip():
                    raise LabError(f"could not set {intf.name} {status}: {out.strip()}")
                names.append(intf.name)
        return names

    # ---- the verbs -------------------------------------------------------------------
    def apply(self, action: str, target: str | None, note: str = "") -> list[FaultChange]:
        """Do one declared action (``lab.core.faults.ACTIONS``); nothing else on this object can be called this way."""
        declared = ACTIONS.get(action)
        if declared is None:
            raise LabError(f"unknown fault action {action!r} (known: {', '.join(ACTIONS)})")
        if declared.target == NONE:
            return self.restore(note)
        if target is None:
            raise LabError(f"{action} needs a target")
        began = time.time()
        return [self._record(getattr(self, action)(target), began, note)]

    def link_down(self, target: str) -> FaultChange:
        link = self._link(target)
        name = f"{link[0]}-{link[1]}"
        if name in self.down:
            raise LabError(f"link {name} is already down")
        intfs = self._set_link(link, "down")
        self.down[name] = link
        return FaultChange("link_down", name, self._affects(link), {"interfaces": intfs})

    def link_up(self, target: str) -> FaultChange:
        link = self._link(target)
        name = f"{link[0]}-{link[1]}"
        if name not in self.down:
            raise LabError(f"link {name} is not down")
        intfs = self._set_link(link, "up")
        routes = [route for node in link for route in self.lab.restore_routes(node)]
        del self.down[name]
        return FaultChange("link_up", name, self._affects(link), {"interfaces": intfs, **({"routes": routes} if routes else {})})

    def crash(self, target: str) -> FaultChange:
        node = self._node(target)
        if node in self.crashed:
            raise LabError(f"{node} is already crashed")
        pids = []
        for service in self.lab.services_on(node):
            pids.append(service.pid)
            self.lab.kill(service)
        self.crashed.add(node)
        self.paused.discard(node)
        return FaultChange("crash", node, (node,), {"killed": pids})

    def restart(self, target: str) -> FaultChange:
        node = self._node(target)
        if node not in self.crashed:
            raise LabError(f"{node} is not crashed")
        services = [s for s in self.lab.services_on(node) if s.state == CRASHED]
        for service in services:
            self.lab.restart(service)
        self.lab.wait_ready(services)
        self.crashed.discard(node)
        return FaultChange("restart", node, (node,), {"started": [s.pid for s in services]})

    def poweroff(self, target: str) -> FaultChange:
        node = self._node(target)
        if node in self.off:
            raise LabError(f"{node} is already powered off")
        host = self.lab.net[node]
        intfs = [i.name for i in host.intfList() if i.name != "lo"]
        # The network goes first, as in a power cut: a daemon dying more slowly
        # (keepalived's VRRP child on SIGTERM) must not get a goodbye advert out.
        for intf in host.intfList():
            if intf.name != "lo":
                intf.ifconfig("down")
        killed = []
        for service in self.lab.services_on(node):
            if service.state != CRASHED:
                killed.append(service.pid)
                self.lab.kill(service)
        self.off.add(node)
        self.crashed.discard(node)
        self.paused.discard(node)
        return FaultChange("poweroff", node, (node,), {"killed": killed, "interfaces": intfs})

    def poweron(self, target: str) -> FaultChange:
        node = self._node(target)
        if node not in self.off:
            raise LabError(f"{node} is not powered off")
        host = self.lab.net[node]
        for group in self.lab.scenario.layout.vrrp.get(node, ()):  # a rebooted machine holds no VIP
            host.cmd(f"ip -4 addr del {group['vip']}/24 dev {node}-eth0 2>/dev/null")
        for intf in host.intfList():
            if intf.name != "lo":
                intf.ifconfig("up")
        self.lab.restore_routes(node)  # a booting machine configures its routes again, not only its addresses
        services = self.lab.services_on(node)
        for service in services:
            self.lab.restart(service)
        self.lab.wait_ready(services)
        self.off.discard(node)
        return FaultChange("poweron", node, (node,), {"started": [s.pid for s in services]})

    def _pair(self, target: str, ordered: bool = False) -> tuple[str, str]:
        pair = resolve_pair(target, self.lab.scenario.layout, ordered)
        if isinstance(pair, str):
            raise LabError(pair)
        return pair

    def partition(self, target: str) -> FaultChange:
        """Each of the two drops every packet from and to the other (nftables, in its own namespace)."""
        a, b = self._pair(target)
        name = f"{a}/{b}"
        if name in self.cut:
            raise LabError(f"{name} are already partitioned")
        for here, there in ((a, b), (b, a)):
            ip = self.lab.addresses[there]
            table = f"halab_cut_{there}"
            out = self.lab.net[here].cmd(
                f"nft add table inet {table} && "
                f"nft add chain inet {table} input '{{ type filter hook input priority 0; }}' && "
                f"nft add chain inet {table} output '{{ type filter hook output priority 0; }}' && "
                f"nft add rule inet {table} input ip saddr {ip} drop && "
                f"nft add rule inet {table} output ip daddr {ip} drop && echo OK")
            if "OK" not in out:
                raise LabError(f"could not cut {here} off from {there}: {out.strip()}")
        self.cut.add(name)
        return FaultChange("partition", name, self._affects((a, b)), {"rule": "nftables drop both ways"})

    def unpartition(self, target: str) -> FaultChange:
        a, b = self._pair(target)
        name = f"{a}/{b}"
        if name not in self.cut:
            raise LabError(f"{name} are not partitioned")
        for here, there in ((a, b), (b, a)):
            self.lab.net[here].cmd(f"nft delete table inet halab_cut_{there}")
        self.cut.discard(name)
        return FaultChange("unpartition", name, self._affects((a, b)))

    def pause(self, target: str) -> FaultChange:
        node = self._node(target)
        if node in self.paused or node in self.crashed:
            raise LabError(f"{node} is already {'paused' if node in self.paused else 'crashed'}")
        pids = []
        for service in self.lab.services_on(node):
            self.lab.signal(service, signal.SIGSTOP)
            service.state = PAUSED
            pids.append(service.pid)
        self.paused.add(node)
        return FaultChange("pause", node, (node,), {"stopped": pids})

    def resume(self, target: str) -> FaultChange:
        node = self._node(target)
        if node not in self.paused:
            raise LabError(f"{node} is not paused")
        pids = []
        for service in self.lab.services_on(node):
            if service.state == PAUSED:
                self.lab.signal(service, signal.SIGCONT)
                service.state = RUNNING
                pids.append(service.pid)
        self.paused.discard(node)
        return FaultChange("resume", node, (node,), {"continued": pids})

    def bad_deploy(self, target: str) -> FaultChange:
        """The node's origin answers 500 to every request but its health check (its control socket's ``set``)."""
        origin = self._origin(target)
        if target in self.erroring:
            raise LabError(f"{target} already answers 500s")
        if target in self.crashed | self.paused | self.off:
            raise LabError(f"{target} is down: a release needs a running origin")
        self.lab.control(origin, "set", fail_status=500)
        self.erroring.add(target)
        return FaultChange("bad_deploy", target, (target,), {"status": 500})

    def rollback(self, target: str) -> FaultChange:
        if target not in self.erroring:
            raise LabError(f"{target} has no bad deploy to roll back")
        if target in self.paused:
            raise LabError(f"{target} is paused: resume it first")
        if target not in self.crashed | self.off:  # a crashed or powered-off origin comes back with the good release
            self.lab.control(self._origin(target), "set", fail_status=0)
        self.erroring.discard(target)
        return FaultChange("rollback", target, (target,))

    def _origin(self, target: str) -> Any:
        origins = [s for s in self.lab.services_on(self._node(target)) if s.spec.service == "origin"]
        if not origins:
            raise LabError(f"{target} runs no halab origin to deploy a bad release to; name an origin")
        return origins[0]

    def hijack(self, target: str) -> FaultChange:
        """The host forges VRRP adverts (priority 255) for every group of the lab, at the groups' own interval (Scapy)."""
        layout = self._attacker(target, self.hijacking, "forged adverts")
        groups = sorted({(g["vrid"], g["vip"]) for gs in layout.vrrp.values() for g in gs})
        if not groups:
            raise LabError("this lab has no VRRP group to hijack")
        args = ["--iface", f"{target}-eth0", "--interval", str(self.lab.scenario.vrrp.advert_interval)]
        proc, log = self._start_attack(target, "lab.packets.vrrp_forge", args + [a for vrid, vip in groups for a in ("--group", f"{vrid}:{vip}")],
                                       "forged VRRP adverts")
        self.hijacking[target] = (proc, log)
        return FaultChange("hijack", target, self._gateways(), {"groups": [f"{vrid}:{vip}" for vrid, vip in groups], "pid": proc.pid})

    def stop_hijack(self, target: str) -> FaultChange:
        if target not in self.hijacking:
            raise LabError(f"{target} is not sending forged adverts")
        self._stop_attack(*self.hijacking.pop(target))
        return FaultChange("stop_hijack", target, self._gateways())

    def arp_spoof(self, target: str) -> FaultChange:
        """The host claims every VIP of the lab with forged gratuitous ARPs (lab.packets.arp_spoof)."""
        layout = self._attacker(target, self.arp_spoofing, "forged ARPs")
        vips = sorted({g["vip"] for gs in layout.vrrp.values() for g in gs})
        if not vips:
            raise LabError("this lab has no VIP to claim")
        args = ["--iface", f"{target}-eth0", "--interval", "0.5"] + [a for vip in vips for a in ("--vip", vip)]
        proc, log = self._start_attack(target, "lab.packets.arp_spoof", args, "forged ARPs")
        self.arp_spoofing[target] = (proc, log)
        return FaultChange("arp_spoof", target, self._gateways(), {"groups": vips, "pid": proc.pid})

    def stop_arp_spoof(self, target: str) -> FaultChange:
        if target not in self.arp_spoofing:
            raise LabError(f"{target} is not sending forged ARPs")
        self._stop_attack(*self.arp_spoofing.pop(target))
        return FaultChange("stop_arp_spoof", target, self._gateways())

    def _attacker(self, host: str, running: dict[str, Any], what: str) -> Any:
        """The lab's layout, once ``host`` may start forging ``what`` (a host of the lab, not doing it already)."""
        layout = self.lab.scenario.layout
        if host not in layout.nodes or layout.nodes[host] == "switch":
            raise LabError(f"no host named {host!r} to send {what} from")
        if host in running:
            raise LabError(f"{host} is already sending {what}")
        return layout

    def _gateways(self) -> tuple[str, ...]:
        """What a forgery against VRRP or the VIP's ARP entry affects: every gateway of a VRRP group."""
        return self._affects(tuple(n for n, gs in self.lab.scenario.layout.vrrp.items() if gs))

    def _start_attack(self, host: str, module: str, args: list[str], what: str) -> tuple[Any, Any]:
        """A Scapy script of lab/packets on ``host``, its output in the run's logs, recorded for cleanup."""
        import sys

        server = self.lab.placement.get(host, "localhost")
        if server != "localhost":  # its process would be there, out of reach of this machine's ledger and signals
            raise LabError(f"{host} is on server {server}: in a cluster lab, attacks start from hosts on this machine "
                           "(place the attacker here with [cluster] place)")
        log = open(self.lab.run_dir / "logs" / f"{host}-{module.rsplit('.', 1)[-1]}.log", "ab")  # noqa: SIM115 - closed with it
        proc = self.lab.net[host].popen([sys.executable, "-m", module, *args], stdout=log, stderr=log)
        self.lab.ledger.add_process(proc.pid, f"{host} {what}")
        return proc, log

    @staticmethod
    def _stop_attack(proc: Any, log: Any) -> None:
        proc.terminate()
        try:
            proc.wait(5)
        except Exception:  # noqa: BLE001 - one that will not stop is killed
            proc.kill()
            proc.wait(5)
        log.close()  # the ledger keeps the pid with its start time: cleanup will not touch a reused one

    def _victim(self, target: str, running: dict[str, Any], doing: str) -> tuple[str, str, int]:
        """'a/b' of an attack: the attacker, the victim and the victim's service port; refused when it makes no sense now."""
        from lab.net.roles import serving_port

        a, b = self._pair(target, ordered=True)
        if f"{a}/{b}" in running:
            raise LabError(f"{a} is already {doing} {b}")
        try:
            return a, b, serving_port(self.lab.scenario, b)
        except StopIteration:
            raise LabError(f"{b} serves nothing to attack; name a balancer or an origin") from None

    def _stop_pair(self, action: str, target: str, running: dict[str, Any], doing: str) -> FaultChange:
        a, b = self._pair(target, ordered=True)
        name = f"{a}/{b}"
        if name not in running:
            raise LabError(f"{a} is not {doing} {b}")
        self._stop_attack(*running.pop(name))
        return FaultChange(action, name, self._affects((b,)))

    def syn_flood(self, target: str) -> FaultChange:
        """A floods B's service port with forged SYNs (lab.packets.syn_flood)."""
        a, b, port = self._victim(target, self.flooding, "flooding")
        proc, log = self._start_attack(a, "lab.packets.syn_flood", ["--iface", f"{a}-eth0", "--target", self.lab.addresses[b],
                                                                   "--port", str(port)], f"SYN flood at {b}")
        self.flooding[f"{a}/{b}"] = (proc, log)
        return FaultChange("syn_flood", f"{a}/{b}", self._affects((b,)), {"pid": proc.pid, "port": port})

    def stop_flood(self, target: str) -> FaultChange:
        return self._stop_pair("stop_flood", target, self.flooding, "flooding")

    def http_flood(self, target: str) -> FaultChange:
        """A sends B valid requests as fast as it may (lab.packets.http_flood)."""
        a, b, port = self._victim(target, self.http_flooding, "flooding")
        args = ["--target", self.lab.addresses[b], "--port", str(port), "--connections", "100", "--rate", "2000"]
        proc, log = self._start_attack(a, "lab.packets.http_flood", args, f"HTTP flood at {b}")
        self.http_flooding[f"{a}/{b}"] = (proc, log)
        return FaultChange("http_flood", f"{a}/{b}", self._affects((b,)), {"pid": proc.pid, "port": port})

    def stop_http_flood(self, target: str) -> FaultChange:
        return self._stop_pair("stop_http_flood", target, self.http_flooding, "flooding")

    def slowloris(self, target: str) -> FaultChange:
        """A holds B's connections with request heads it never finishes (lab.packets.slowloris)."""
        a, b, port = self._victim(target, self.slowing, "slowing")
        args = ["--target", self.lab.addresses[b], "--port", str(port), "--connections", "200", "--interval", "2"]
        proc, log = self._start_attack(a, "lab.packets.slowloris", args, f"slow clients at {b}")
        self.slowing[f"{a}/{b}"] = (proc, log)
        return FaultChange("slowloris", f"{a}/{b}", self._affects((b,)), {"pid": proc.pid, "port": port})

    def stop_slowloris(self, target: str) -> FaultChange:
        return self._stop_pair("stop_slowloris", target, self.slowing, "slowing")

    def _in_force(self) -> list[tuple[str, str]]:
        """(fault, target) for everything broken, in the order of the fault table."""
        sets = {"down": list(self.down), "crashed": sorted(self.crashed), "paused": sorted(self.paused),
                "erroring": sorted(self.erroring),
                "off": sorted(self.off), "cut": sorted(self.cut), "hijacking": sorted(self.hijacking),
                "arp_spoofing": sorted(self.arp_spoofing), "flooding": sorted(self.flooding),
                "http_flooding": sorted(self.http_flooding), "slowing": sorted(self.slowing)}
        assert set(sets) == set(BROKEN_SETS), "a broken set of lab.core.faults has no state here"
        faults = {a.broken: a for a in ACTIONS.values() if a.broken and not a.is_repair}
        return [(faults[kind].name, target) for kind in BROKEN_SETS for target in sets[kind]]

    def restore(self, note: str = "") -> list[FaultChange]:
        """Undo every fault still in force, each by its declared repair."""
        changes = []
        for fault, target in self._in_force():
            began = time.time()
            changes.append(self._record(getattr(self, REPAIR_OF[fault])(target), began, note or "restore"))
        return changes

    def broken(self) -> list[str]:
        return [f"{'link ' if ACTIONS[f].target == LINK else ''}{t} {ACTIONS[f].state}" for f, t in self._in_force()]
