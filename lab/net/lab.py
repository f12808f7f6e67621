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
    proc: subprocess.Popen[bytes] | None = None  # on another server of a cluster lab: the local ssh client that started it
    state: str = STOPPED
    server: str = "localhost"
    remote_pid: int | None = None  # its pid on that server, from its service_ready event
    ready_offset: int = 0  # where its event file ended when it was (re)started: its own service_ready comes after

    @property
    def remote(self) -> bool:
        return self.server != "localhost"

    @property
    def pid(self) -> int | None:
        if self.remote:
            return self.remote_pid
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
        self.servers: Any = None  # lab.net.cluster.Servers, in a lab over several servers
        self.placement: dict[str, str] = {}  # node -> server, in a lab over several servers
        self.lost_servers: set[str] = set()  # servers whose connection was lost during the run

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
        cluster = self.scenario.cluster
        mtu = 1500
        if cluster is not None:  # Cluster Edition's classes, even with this machine alone
            from lab.net import cluster as remote

            self.servers = remote.Servers(cluster, self.run_dir)
            if cluster.remote:
                self.ledger.data["servers"].extend(remote.ledger_entries(cluster))
                self.ledger.save()
            self.servers.connect(self.say)
            for server, agent in self.servers.agents.items():  # ended by `halab clean` after a crash: the agent then cleans up
                self.ledger.add_process(agent.proc.pid, f"agent on {server} (ssh)")
            for server in cluster.remote:
                self.servers.agents[server].ask("mkdir", path=CONTROL_DIR)  # the services' control sockets, there too
            self.net, self.placement, _, mtu = remote.build(topo, cluster, self.servers, self.say)
        else:
            self.net = Mininet(topo=topo, switch=switch_class(self.scenario.switch), controller=None, autoSetMacs=True,
                               build=False, waitConnected=False)
        try:
            self.net.build()
        finally:
            for node in self.net.hosts + self.net.switches:
                self._record_shell(node)
        self.net.start()
        for sw in self.net.switches:
            for name in [sw.name] + [i.name for i in sw.intfList() if i.name != "lo"]:
                if self._server(sw.name) == "localhost":
                    self.ledger.add_interface(name)
                else:
                    self.servers.agents[self._server(sw.name)].ask("record", kind="interface", name=name)
        if mtu < 1500:  # a frame must fit in one tunnel packet: a bridge drops what is larger than its port's MTU
            for host in self.net.hosts:
                for intf in host.intfList():
                    if intf.name != "lo":
                        host.cmd(f"ip link set {intf.name} mtu {mtu}")
        self.addresses = {h.name: h.IP() for h in self.net.hosts}
        # An interface set down loses the routes through it (a default route via a router, in
        # proxy_chain), and setting it up again brings back only the kernel's own: remember them.
        self.routes = {h.name: [line.strip() for line in h.cmd("ip -4 route show").splitlines()
                                if line.strip() and "proto kernel" not in line] for h in self.net.hosts}
        # every address of every host (a router or a gateway has one per network), for naming them in traces
        interfaces = {h.name: [i.IP() for i in h.intfList() if i.IP() and i.name != "lo"] for h in self.net.hosts}
        self.event("lab_built", topology=self.scenario.topology, switch=self.scenario.switch,
                   nodes=dict(self.scenario.layout.nodes), addresses=self.addresses, interfaces=interfaces,
                   **({"servers": self.placement} if self.placement else {}))

    def _server(self, node: str) -> str:
        return self.placement.get(node, "localhost")

    def _record_shell(self, node: Any) -> None:
        """A node's shell in the ledger: here its pid; on another server the local ssh client here and the shell there."""
        if node.shell is None:
            return
        server = self._server(node.name)
        if server == "localhost":
            if node.inNamespace:
                self.ledger.add_process(node.pid, f"{node.name} shell")
            return
        self.ledger.add_process(node.shell.pid, f"{node.name} shell (ssh to {server})")
        if node.pid:
            self.servers.agents[server].ask("record", kind="process", pid=node.pid, what=f"{node.name} shell")

    def close(self) -> None:
        try:
            if self.servers is not None and self.net is not None:
                self._forget(self._lost_servers())
            for proc in self.captures:  # SIGTERM lets tcpdump write its last packets
                proc.terminate()
                proc.wait(timeout=5)
            # Tier by tier, clients first and origins last (a balancer must not see its origins die and say so);
            # within a tier all at once: each takes tens of milliseconds to exit, and a lab has dozens
            for tier in reversed(TIERS):
                batch = [s for s in self.services.values() if s.spec.service == tier]
                try:
                    self._stop_all(batch)
                except LabError as e:  # a server lost while closing: its agent cleans it up by itself
                    self.say(f"could not stop {', '.join(s.spec.key for s in batch)}: {e}")
            if self.net is not None:
                try:
                    self.net.stop()
                except LabError as e:  # a server lost while stopping: the ledgers (here and its agent's) clean up
                    self.say(f"could not stop the network cleanly: {e}")
                self.net = None
        finally:
            left = self._close_servers()
            left += self.lock.ledger.cleanup() if self.lock.ledger is not None else []
            self.lock.release()
            if self.log is not None:
                self.log.close()
                self.log = None
        self.leftover_report = [line for line in left if not line.startswith(("directory", "file"))]

    def _lost_servers(self) -> set[str]:
        """Servers whose agent connection, or the ssh connection of a node's shell there, is gone."""
        lost = set(self.servers.lost())
        for node in self.net.hosts + self.net.switches:
            if getattr(node, "isRemote", False) and node.shell is not None and node.shell.poll() is not None:
                lost.add(node.server)
        return lost

    def _forget(self, lost: set[str]) -> None:
        """Drop what runs on servers whose connection is gone: nothing there can be reached to stop it (each agent
        cleans its own server when the lab's heartbeats stop), and a command to a dead shell would wait forever."""
        if not lost:
            return
        self.lost_servers |= lost
        net = self.net
        gone = {n.name for n in net.hosts + net.switches if self._server(n.name) in lost}
        for service in self.services.values():
            if service.server in lost:
                if service.proc is not None and service.proc.poll() is None:
                    service.proc.kill()  # the ssh client here
                    service.proc.wait(timeout=5)
                service.remote_pid = None  # out of reach: nothing to signal there
                service.state = STOPPED
        for node in [n for n in net.hosts + net.switches if n.name in gone]:
            if node.shell is not None and node.shell.poll() is None:
                node.shell.kill()
                node.shell.wait(timeout=5)
        net.links = [link for link in net.links if link.intf1.node.name not in gone and link.intf2.node.name not in gone]
        net.hosts = [n for n in net.hosts if n.name not in gone]
        net.switches = [n for n in net.switches if n.name not in gone]
        for name in gone:
            net.nameToNode.pop(name, None)

    def _close_servers(self) -> list[str]:
        """Gather the other servers' event logs, write their clock offsets, and let each agent clean its server."""
        if self.servers is None:
            return []
        from lab.events import EVENTS_DIR, write_clocks
        from lab.net.agent import IDLE

        left: list[str] = []
        lost = self.lost_servers | set(self.servers.lost())
        try:
            for server in self.servers.agents:
                if server not in lost:
                    self.servers.gather(server, self.run_dir / EVENTS_DIR)
            write_clocks(self.run_dir, self.placement, self.servers.clocks(), self.servers.shared)
        except LabError as e:
            left.append(str(e))
        left += [line for line in self.servers.close() if line.split(":")[0] not in lost]
        left += [f"server {server} was lost: its agent removes what the lab made there once it has heard nothing for "
                 f"{IDLE:g} s" for server in sorted(lost)]
        if not left:  # every agent cleaned its server: nothing for `halab clean` to visit again
            self.ledger.data["servers"] = []
        else:  # `halab clean` tries the lost ones again now, and says if one is still out of reach
            self.ledger.data["servers"] = [e for e in self.ledger.data["servers"] if e["server"] in lost]
        self.ledger.save()
        self.servers = None
        return left

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
            if self._server(owners[name].name) != "localhost":
                raise LabError(f"capture: {name} is on server {self._server(owners[name].name)}; in a cluster lab, capture "
                               "on interfaces of this machine's nodes (the pcap is written where tcpdump runs)")
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
        service = self.services.get(spec.key) or Service(spec, server=self._server(spec.node))
        config = dict(spec.config)
        if service.remote and "start_at" in config:  # a load generator there starts by its own clock: the same moment
            config["start_at"] += self.servers.start_clock[service.server].offset
        config_path.write_text(json.dumps(config, indent=1))
        if service.remote:
            self.servers.write(service.server, config_path, config_path.read_text())
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
        if service.remote:
            service.remote_pid = None
            service.ready_offset = self._agent(service).ask("size", path=str(spec.config["events"]))
        service.proc = self.net[spec.node].popen([sys.executable, "-m", spec.module, "--config", str(config_path)],
                                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        service.state = RUNNING
        if service.remote:  # its ssh client here (no session of its own: Cluster Edition puts it in a process group)
            self.ledger.add_process(service.proc.pid, f"{spec.key} (ssh to {service.server})")
        else:
            self.ledger.add_process(service.proc.pid, spec.key, session=True)

    def _agent(self, service: Service) -> Any:
        return self.servers.agents[service.server]

    def _ready(self, service: Service) -> bool:
        if not service.remote:
            return _said_ready(Path(service.spec.config["events"]), service.pid)
        pid = self._agent(service).ask("ready_pid", path=str(service.spec.config["events"]), offset=service.ready_offset)
        if pid is None:
            return False
        service.remote_pid = pid
        self._agent(service).ask("record", kind="process", pid=pid, what=service.spec.key, session=True)
        return True

    def control(self, service: Service, cmd: str, timeout: float = 2.0, **args: Any) -> Any:
        """A command to a service's control socket, on whichever server it runs."""
        from lab.services.runtime import call

        path = str(service.spec.config["control"])
        if service.remote and not self.servers.shared[service.server]:
            return self._agent(service).ask("control", path=path, cmd=cmd, args=args)
        return call(path, cmd, timeout=timeout, **args)

    def wait_ready(self, services: list[Service], timeout: float = 15.0) -> None:
        """Block until each service's current process has said ``service_ready``."""
        deadline = time.time() + timeout
        pending = {s.spec.key: s for s in services}
        while pending:
            for key, service in list(pending.items()):
                if self._ready(service):
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
        if self.servers is not None:
            lost = sorted(self._lost_servers())
            if lost:
                why = self.servers.why(lost[0]) if lost[0] in self.servers.lost() else "the ssh connection of a node's shell there ended"
                raise LabError(f"lost server {lost[0]}: {why}. The run is stopped here: what it would count from now on is "
                               "the control connection's outage, not the lab's")
        from lab.net.cluster import LOST

        gone = []
        for service in self.services.values():
            proc = service.proc
            if service.state != RUNNING or ROLES[service.spec.service].with_load or proc is None or proc.poll() is None:
                continue
            if service.remote and proc.returncode == LOST:  # ssh's own code: the connection, not the service, ended
                raise LabError(f"lost the ssh connection to server {service.server} ({service.spec.key} ran there): the run "
                               "is stopped, since what it would count as an outage is the control connection's")
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
            if service.remote:  # the process on its server, not the ssh client here
                if service.remote_pid is not None:
                    self._agent(service).ask("signal", pid=service.remote_pid, sig=int(sig))
            else:
                service.proc.send_signal(sig)

    def kill(self, service: Service) -> None:
        """SIGKILL the service and everything it started (a daemon's children too)."""
        if service.proc is not None:
            if service.remote:
                if service.remote_pid is not None:
                    self._agent(service).ask("signal", pid=service.remote_pid, sig=int(signal.SIGKILL), session=True)
            else:
                kill_session(service.proc.pid)
            service.proc.wait(timeout=5)
        service.state = CRASHED

    def restart(self, service: Service) -> None:
        self._launch(service)

    def _stop(self, service: Service, grace: float = 3.0) -> None:
        self._stop_all([service], grace)

    def _stop_all(self, services: list[Service], grace: float = 3.0) -> None:
        """SIGTERM each (SIGCONT first: a paused one cannot act on it), give them ``grace`` seconds together, then SIGKILL
        what is left; then whatever each left running in its session."""
        running = [s for s in services if s.proc is not None and s.proc.poll() is None]
        for service in running:
            self.signal(service, signal.SIGCONT)
            self.signal(service, signal.SIGTERM)
        deadline = time.time() + grace
        for service in running:
            assert service.proc is not None
            try:
                service.proc.wait(timeout=max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                self.signal(service, signal.SIGKILL)
                service.proc.wait(timeout=5)
        for service in services:
            if service.proc is None:
                pass
            elif service.remote:
                if service.remote_pid is not None:
                    self._agent(service).ask("signal", pid=service.remote_pid, sig=int(signal.SIGKILL), session=True)
            else:
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
