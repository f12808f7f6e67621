"""The lab: a Mininet network with halab's services running in its hosts.

``with Lab(scenario, run_dir) as lab:`` takes the machine's lab slot,
builds the topology (LinuxBridge switches, no controller, so it runs on a
kernel without Open vSwitch), records every host shell, interface and
process in the ledger, and on exit stops the services, stops Mininet and
removes whatever the ledger still lists. The ``finally`` path runs on
errors and Ctrl-C too; ``halab clean`` covers a lab that was killed.
"""
from __future__ import annotations

import functools
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.core.roles import ROLES, TIERS
from lab.core.scenario import Scenario
from lab.events import EventLog, event_path, parse_lines
from lab.net import features
from lab.net.errors import LabError
from lab.net.roles import CONTROL_DIR, ServiceSpec
from lab.net.state import LabLock, ifindex, kill_session

RUNNING, CRASHED, PAUSED, STOPPED = "running", "crashed", "paused", "stopped"
EXITED = "exited"  # ended by itself, not by a fault or the lab: something is wrong with it


@dataclass
class Service:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes] | None = None
    state: str = STOPPED

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


def switch_class(kind: str) -> Any:
    from mininet.node import OVSBridge
    from mininet.nodelib import LinuxBridge

    if kind == "lxbr":
        return LinuxBridge
    ovs = features.probe("ovs")
    if not ovs.available:
        raise LabError(f"switch 'ovsbr' needs Open vSwitch running: {ovs.detail}. Use switch = \"lxbr\" (the default) instead.")
    # Without the kernel module, Open vSwitch can still switch in userspace (the netdev datapath).
    datapath = "kernel" if features.probe("ovs_kernel_datapath").available else "user"
    return functools.partial(OVSBridge, datapath=datapath)


class Lab:
    def __init__(self, scenario: Scenario, run_dir: Path, say: Any = print) -> None:
        self.scenario = scenario
        self.run_dir = Path(run_dir)
        self.say = say
        self.lock = LabLock()
        self.net: Any = None
        self.services: dict[str, Service] = {}
        self.addresses: dict[str, str] = {}
        self.log: EventLog | None = None
        self.captures: list[subprocess.Popen[bytes]] = []
        self.routes: dict[str, list[str]] = {}  # host -> the routes it was built with (not the kernel's own)
        self.leftover_report: list[str] = []

    # ---- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> "Lab":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cleaned = self.lock.acquire(self.scenario.name, str(self.run_dir))
        if cleaned:
            self.say(f"removed what a crashed lab left behind: {', '.join(cleaned)}")
        try:
            self.log = EventLog(event_path(self.run_dir, "lab", "lab"), "lab", "lab")
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ledger(self) -> Any:
        assert self.lock.ledger is not None
        return self.lock.ledger

    def _build(self) -> None:
        from mininet.log import setLogLevel
        from mininet.net import Mininet

        import topologies

        features.preflight()  # a host that cannot start would make Mininet wait forever
        setLogLevel("error")  # Mininet warns about bridge-nf sysctls that do not exist without br_netfilter
        topo, _ = topologies.make(self.scenario.topology, self.scenario.topology_params, self.scenario.source)
        taken = [s for s in topo.switches() if ifindex(s) is not None]
        if taken:
            raise LabError(f"interface(s) {', '.join(taken)} already exist and were not made by this lab: another Mininet "
                           f"network may be running. Stop it (or remove them) before starting halab.")
        for name in topo.switches():
            self.ledger.add_interface(name)  # before creation: a crash mid-build still leaves a record
        Path(CONTROL_DIR).mkdir(parents=True, exist_ok=True)
        self.ledger.add_path(CONTROL_DIR)
        self.net = Mininet(topo=topo, switch=switch_class(self.scenario.switch), controller=None, autoSetMacs=True,
                           build=False, waitConnected=False)
        try:
            self.net.build()
        finally:
            for host in self.net.hosts:
                if host.shell is not None:
                    self.ledger.add_process(host.pid, f"{host.name} shell")
        self.net.start()
        for sw in self.net.switches:
            self.ledger.add_interface(sw.name)
            for intf in sw.intfList():
                if intf.name != "lo":
                    self.ledger.add_interface(intf.name)
        self.addresses = {h.name: h.IP() for h in self.net.hosts}
        # An interface set down loses the routes through it (a default route via a router, in
        # proxy_chain), and setting it up again brings back only the kernel's own: remember them.
        self.routes = {h.name: [line.strip() for line in h.cmd("ip -4 route show").splitlines()
                                if line.strip() and "proto kernel" not in line] for h in self.net.hosts}
        # every address of every host (a router or a gateway has one per network), for naming them in traces
        interfaces = {h.name: [i.IP() for i in h.intfList() if i.IP() and i.name != "lo"] for h in self.net.hosts}
        self.event("lab_built", topology=self.scenario.topology, switch=self.scenario.switch,
                   nodes=dict(self.scenario.layout.nodes), addresses=self.addresses, interfaces=interfaces)

    def close(self) -> None:
        try:
            for proc in self.captures:  # SIGTERM lets tcpdump write its last packets
                proc.terminate()
                proc.wait(timeout=5)
            for service in reversed(list(self.services.values())):  # clients first, origins last
                self._stop(service)
            if self.net is not None:
                self.net.stop()
                self.net = None
        finally:
            left = self.lock.ledger.cleanup() if self.lock.ledger is not None else []
            self.lock.release()
            if self.log is not None:
                self.log.close()
                self.log = None
        self.leftover_report = [line for line in left if not line.startswith(("directory", "file"))]

    def event(self, kind: str, t: float | None = None, **fields: Any) -> None:
        if self.log is not None:
            self.log.emit(kind, t=t, **fields)

    def capture(self, interfaces: tuple[str, ...]) -> None:
        """tcpdump per chosen interface, inside the node that owns it, into run_dir/pcap/."""
        if not interfaces:
            return
        out = self.run_dir / "pcap"
        out.mkdir(exist_ok=True)
        owners = {i: h for h in self.net.hosts for i in h.intfNames() if i != "lo"}
        for name in interfaces:
            if name not in owners:
                raise LabError(f"capture: no interface {name!r} on a host (interfaces: {', '.join(sorted(owners))})")
            # Offloads off first (as the REFERENCE says for captures): otherwise a veth hands tcpdump
            # segments the kernel has not cut yet (frames bigger than the MTU) and checksums not yet filled in
            owners[name].cmd(f"ethtool -K {name} tso off gso off gro off tx off")
            # --immediate-mode: each packet is handed over as it comes, not in blocks that the kernel
            # releases up to a second later; without it, stopping tcpdump loses the last second of traffic
            proc = owners[name].popen(["tcpdump", "-i", name, "--immediate-mode", "-U", "-s", "256", "-w", str(out / f"{name}.pcap")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            self.ledger.add_process(proc.pid, f"tcpdump {name}")
            self.captures.append(proc)

    # ---- services --------------------------------------------------------------------
    def start(self, spec: ServiceSpec) -> Service:
        config_path = self.run_dir / "config" / f"{spec.key}.json"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps(spec.config, indent=1))
        service = self.services.get(spec.key) or Service(spec)
        self.services[spec.key] = service
        self._launch(service)
        return service

    def start_all(self, specs: list[ServiceSpec]) -> list[Service]:
        """Start services tier by tier, each tier ready before the next: a balancer
        started before its origins listen would see refused probes and mark them DOWN."""
        started: list[Service] = []
        for tier in TIERS:
            batch = [self.start(spec) for spec in specs if spec.service == tier]
            # every process imports Python before it can say ready: 50 origins on 2 cores take seconds, not one
            self.wait_ready(batch, timeout=15.0 + 0.3 * len(batch))
            started += batch
        return started

    def _launch(self, service: Service) -> None:
        spec = service.spec
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = open(logs / f"{spec.key}.log", "ab")
        config_path = self.run_dir / "config" / f"{spec.key}.json"
        service.proc = self.net[spec.node].popen([sys.executable, "-m", spec.module, "--config", str(config_path)],
                                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        service.state = RUNNING
        self.ledger.add_process(service.proc.pid, spec.key, session=True)

    def wait_ready(self, services: list[Service], timeout: float = 15.0) -> None:
        """Block until each service's current process has said ``service_ready``."""
        deadline = time.time() + timeout
        pending = {s.spec.key: s for s in services}
        while pending:
            for key, service in list(pending.items()):
                if _said_ready(Path(service.spec.config["events"]), service.pid):
                    del pending[key]
                elif service.proc is not None and service.proc.poll() is not None:
                    log = (self.run_dir / "logs" / f"{key}.log").read_text(errors="replace")[-2000:]
                    raise LabError(f"{key} exited with code {service.proc.returncode} before it was ready:\n{log}")
            if pending and time.time() > deadline:
                raise LabError(f"not ready after {timeout:g} s: {', '.join(sorted(pending))} (see {self.run_dir / 'logs'})")
            time.sleep(0.05)

    def watch(self) -> list[Service]:
        """Services that ended by themselves since the last look: each becomes a ``service_exited`` event at once.

        Faults end services on purpose (their state says so) and load
        generators end when their load is sent; anything else that stops is
        a failure the run must show, not a silence.
        """
        gone = []
        for service in self.services.values():
            proc = service.proc
            if service.state != RUNNING or ROLES[service.spec.service].with_load or proc is None or proc.poll() is None:
                continue
            service.state = EXITED
            log = self.run_dir / "logs" / f"{service.spec.key}.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            self.event("service_exited", target=service.spec.node, service=service.spec.service, key=service.spec.key,
                       code=proc.returncode, log=" | ".join(tail)[-300:])
            gone.append(service)
        return gone

    def restore_routes(self, node: str) -> list[str]:
        """Put back the routes ``node`` was built with (after its interfaces came up again); returns those re-added."""
        if node not in self.routes:
            return []
        host = self.net[node]
        present = {line.strip() for line in host.cmd("ip -4 route show").splitlines()}
        missing = [route for route in self.routes[node] if route not in present]
        for route in missing:
            out = host.cmd(f"ip -4 route replace {route}")
            if out.strip():
                raise LabError(f"could not restore the route '{route}' on {node}: {out.strip()}")
        return missing

    def services_on(self, node: str) -> list[Service]:
        return [s for s in self.services.values() if s.spec.node == node]

    def signal(self, service: Service, sig: int) -> None:
        if service.proc is not None and service.proc.poll() is None:
            service.proc.send_signal(sig)

    def kill(self, service: Service) -> None:
        """SIGKILL the service and everything it started (a daemon's children too)."""
        if service.proc is not None:
            kill_session(service.proc.pid)
            service.proc.wait(timeout=5)
        service.state = CRASHED

    def restart(self, service: Service) -> None:
        self._launch(service)

    def _stop(self, service: Service, grace: float = 3.0) -> None:
        if service.proc is None or service.proc.poll() is not None:
            if service.proc is not None:
                kill_session(service.proc.pid)
            service.state = STOPPED
            return
        self.signal(service, signal.SIGCONT)
        self.signal(service, signal.SIGTERM)
        try:
            service.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.signal(service, signal.SIGKILL)
            service.proc.wait(timeout=5)
        kill_session(service.proc.pid)  # anything it left running
        service.state = STOPPED

    def wait_exit(self, services: list[Service], timeout: float) -> list[Service]:
        """Wait for services that end by themselves (load generators); return those still running."""
        deadline = time.time() + timeout
        for service in services:
            if service.proc is None:
                continue
            try:
                service.proc.wait(timeout=max(0.0, deadline - time.time()))
                service.state = STOPPED
            except subprocess.TimeoutExpired:
                pass
        return [s for s in services if s.proc is not None and s.proc.poll() is None]


def _said_ready(path: Path, pid: int | None) -> bool:
    if not path.exists():
        return False
    text = path.read_text(errors="replace")
    complete = text[: text.rfind("\n") + 1]
    return any(e.get("kind") == "service_ready" and e.get("pid") == pid for e in parse_lines(complete.splitlines()))
