"""A lab over several servers, on Mininet Cluster Edition (``mininet.examples.cluster``).

Cluster Edition supplies the engine: ``MininetCluster`` places nodes,
``RemoteHost`` runs a host's shell on its server over ssh, ``RemoteLink``
makes a veth pair on one server and a tunnel between two. halab adds what a
teaching lab needs on top:

- a Linux bridge on a remote server (``RemoteLinuxBridge``): there is no Open
  vSwitch on the lab VM, and halab's switches are Linux bridges everywhere;
- a tunnel link (``RemoteTunnelLink``) that makes Cluster Edition's gretap
  ends or VXLAN ones, for kernels without GRE (this lab's VM has VXLAN and no
  GRE), each end with one command over the agent's ssh connection;
- a shell whose ssh connection died raises instead of hanging (Mininet's
  wait for a command's output has no working timeout);
- ssh without sudo when halab logs in as root, through an ``ssh_config`` of
  the scenario's own and with keep-alives, so a lost server ends ssh (exit
  code 255) within seconds and the lab can say so;
- an agent per remote server (``lab.net.agent``) that keeps that server's
  ledger, signals its processes by pid, moves files when the servers share
  no filesystem, and reads its clock;
- never Cluster Edition's cleanup, which runs Mininet's catch-all cleaner on
  every server: each agent removes exactly what its ledger lists.
"""
from __future__ import annotations

import json
import os
import secrets
import select
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from lab.core import cluster as plan
from lab.core.cluster import LOCAL, ClusterSettings, Offset
from lab.net.agent import HEARTBEAT, IDLE
from lab.net.errors import LabError

# Keep-alives: a connection that hears nothing for about 3-4 s ends (ssh's code 255), so a lost server stops the run
# within seconds; a host-only network between two lab VMs has no such silences while it works.
SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=3", "-o", "ConnectTimeout=3"]
LOST = 255  # ssh's own exit code: the connection failed or was lost, whatever the remote command did (lab.net.lab)
VXLAN_PORT = 4789


def ssh_base(settings: ClusterSettings) -> list[str]:
    return ["ssh", "-q", *(["-F", settings.ssh_config] if settings.ssh_config else []), *SSH_OPTIONS]


def mux_path(server: str) -> Path:
    """The control socket of the agent's ssh connection to ``server``: the lab's short commands there (making a
    tunnel's end) ride on it instead of paying a key exchange each. Long-lived sessions (the hosts' shells, the
    services) get connections of their own: sshd allows only MaxSessions (10 by default) on one connection."""
    from lab.net.state import STATE_DIR

    return STATE_DIR / f"ssh-{server}"


def server_address(settings: ClusterSettings, server: str) -> str:
    if server in settings.addresses:
        return settings.addresses[server]
    from mininet.examples.cluster import RemoteMixin

    found = RemoteMixin.findServerIP(server)
    if not found:
        raise LabError(f"cluster: cannot find the address of server {server!r}: add it to [cluster] addresses, "
                       f"e.g. addresses = {{ {server} = \"192.168.56.12\" }}")
    return found


class AgentLink:
    """The control connection to one remote server: ssh to ``python -m lab.net.agent``, JSON lines both ways."""

    def __init__(self, server: str, address: str, settings: ClusterSettings, mux: bool = False) -> None:
        self.server = server
        self.address = address
        self.lock = threading.Lock()
        master = ["-o", "ControlMaster=yes", "-o", f"ControlPath={mux_path(server)}"] if mux else []
        cmd = [*ssh_base(settings), *master, f"{settings.user}@{address}", sys.executable, "-m", "lab.net.agent", "--idle", str(IDLE)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     bufsize=1, start_new_session=True)  # Ctrl-C reaches the lab, which then closes this
        first = self._line()
        if not first.get("ok"):
            raise LabError(f"cluster: server {server} ({address}) {first.get('error')}")
        self.cleaned: list[str] = first["result"]["cleaned"]
        self.lost = ""  # why the connection was lost, once it was
        self.closing = threading.Event()

    def keep_alive(self) -> None:
        """A heartbeat every HEARTBEAT s, from a thread: the agent cleans up when they stop, and a failed one says the
        server is lost (``lost``), for the lab to stop the run on rather than count the silence as an outage."""
        def beat() -> None:
            while not self.closing.wait(HEARTBEAT):
                try:
                    self.ask("time")
                except LabError as e:
                    self.lost = str(e)
                    return

        threading.Thread(target=beat, daemon=True, name=f"heartbeat {self.server}").start()

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=5)
            err = (self.proc.stderr.read() if self.proc.stderr else "").strip()
            raise LabError(f"cluster: lost the connection to server {self.server} ({self.address}): "
                           + (err or f"ssh exited with code {self.proc.returncode}") + ". `sudo halab doctor --cluster "
                           f"{self.server}` says what is missing.")
        return json.loads(line)

    def ask(self, op: str, **args: Any) -> Any:
        with self.lock:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass  # _line says what happened
            reply = self._line()
        if not reply.get("ok"):
            raise LabError(f"cluster: server {self.server}: {op}: {reply.get('error')}")
        return reply["result"]

    def clock(self, samples: int = 30) -> Offset:
        """This server's clock against ours, from ``samples`` round trips (the shortest wins)."""
        out = []
        for _ in range(samples):
            t0 = time.time()
            t1 = self.ask("time")
            out.append((t0, t1, time.time()))
        return plan.estimate(out)

    def close(self, timeout: float = 20.0) -> None:
        """End the agent: it removes what its ledger lists on that server, then exits."""
        self.closing.set()
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class Servers:
    """Every remote server of a run: its agent, whether it shares this machine's files, and its clock."""

    def __init__(self, settings: ClusterSettings, run_dir: Path) -> None:
        self.settings = settings
        self.run_dir = run_dir
        self.agents: dict[str, AgentLink] = {}
        self.shared: dict[str, bool] = {}
        self.info: dict[str, dict[str, Any]] = {}
        self.start_clock: dict[str, Offset] = {}

    def connect(self, say: Any) -> None:
        token_path = self.run_dir / ".cluster-token"
        token = secrets.token_hex(8)
        token_path.write_text(token)
        try:
            for server in self.settings.remote:
                address = server_address(self.settings, server)
                agent = AgentLink(server, address, self.settings, mux=True)
                self.agents[server] = agent
                if agent.cleaned:
                    say(f"{server}: removed what a crashed lab left behind: {', '.join(agent.cleaned)}")
                self.info[server] = agent.ask("hello", token_path=str(token_path))
                self.shared[server] = self.info[server]["token"] == token
                self.start_clock[server] = agent.clock()
                agent.keep_alive()
        finally:
            token_path.unlink(missing_ok=True)

    def lost(self) -> list[str]:
        """The servers whose control connection is gone."""
        return [s for s, agent in self.agents.items() if agent.lost or agent.proc.poll() is not None]

    def why(self, server: str) -> str:
        agent = self.agents[server]
        return agent.lost or f"the connection to {server} ended (ssh exited with code {agent.proc.returncode})"

    def tunnel_kind(self) -> str:
        from lab.net import features

        kinds = {LOCAL: features.tunnel_kinds()}
        kinds.update({server: info["tunnels"] for server, info in self.info.items()})
        try:
            return plan.choose_tunnel(self.settings.tunnel, kinds)
        except ValueError as e:
            raise LabError(f"cluster: {e}") from None

    def clocks(self) -> dict[str, Offset]:
        """Each server's offset over the whole run (sampled again now, at its end)."""
        out = {}
        for server, agent in self.agents.items():
            if server not in self.start_clock:  # lost before its clock was read: its events cannot be placed on ours
                continue
            try:
                out[server] = plan.across_run(self.start_clock[server], agent.clock())
            except LabError:
                out[server] = self.start_clock[server]
        return out

    def write(self, server: str, path: Path, text: str) -> None:
        """A file the service on ``server`` reads (its config): sent there unless that server sees our files."""
        if not self.shared[server]:
            self.agents[server].ask("write", path=str(path), text=text)

    def gather(self, server: str, directory: Path, pattern: str = "*.jsonl", into: Path | None = None) -> list[Path]:
        """The server's files in ``directory`` (its event logs), copied into the same folder here (or ``into``) unless
        it shares our files."""
        agent = self.agents[server]
        into = directory if into is None else into
        names = [Path(p) for p in agent.ask("listdir", path=str(directory), pattern=pattern)]
        if not self.shared[server]:
            into.mkdir(parents=True, exist_ok=True)
            for path in names:
                (into / path.name).write_text(agent.ask("read", path=str(path)))
        return [into / p.name for p in names]

    def close(self) -> list[str]:
        left = []
        for server, agent in self.agents.items():
            agent.close()
            if agent.proc.returncode not in (0, None):
                left.append(f"{server}: its agent ended with code {agent.proc.returncode}; run `sudo halab clean` again")
        return left


def ledger_entries(settings: ClusterSettings) -> list[dict[str, Any]]:
    """What the local ledger keeps of each remote server: enough for ``halab clean`` to reach it after a crash."""
    return [{"server": s, "address": server_address(settings, s), "user": settings.user, "ssh_config": settings.ssh_config}
            for s in settings.remote]


def clean_server(entry: Mapping[str, Any], wait: float = 15.0) -> list[str]:
    """Clean one server a crashed lab used: start its agent (which first removes what its ledger lists) and end it.

    The crashed lab's own agent may still be finishing the same work, holding
    that server's slot: try again until ``wait`` runs out."""
    settings = ClusterSettings(servers=(LOCAL, entry["server"]), addresses={entry["server"]: entry["address"]}, user=entry["user"],
                               ssh_config=entry["ssh_config"])
    deadline = time.time() + wait
    while True:
        try:
            agent = AgentLink(entry["server"], entry["address"], settings)
        except LabError as e:
            if "another halab lab" in str(e) and time.time() < deadline:
                time.sleep(0.5)
                continue
            return [f"server {entry['server']}: not cleaned: {e}"]
        agent.close()
        return [f"server {entry['server']}: {line}" for line in agent.cleaned]


# ---- Mininet classes ------------------------------------------------------------------------
def node_classes(settings: ClusterSettings, kind: str, mtu: int) -> tuple[Any, Any, Any]:
    """(host, switch, link) classes for MininetCluster, bound to this run's ssh settings, tunnel kind and MTU."""
    from mininet.examples.cluster import RemoteLink, RemoteMixin
    from mininet.node import Host, Node
    from mininet.nodelib import LinuxBridge

    base = ssh_base(settings)

    class HalabRemote(RemoteMixin):
        """RemoteMixin with halab's ssh options, and no sudo when logging in as root (Debian has no sudo by default)."""
        sshbase = [*base, "-tt"]

        def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("user", settings.user)
            super().__init__(name, *args, **kwargs)

        def startShell(self, *args: Any, **kwargs: Any) -> None:  # noqa: N802 (Mininet's name); RemoteMixin.__init__ calls it
            if self.isRemote and self.user == "root" and os.geteuid() == 0:
                self.sshcmd = [*self.sshbase, self.dest]  # Cluster Edition's is `sudo -E -u root ssh ...`
            super().startShell(*args, **kwargs)

        def waitOutput(self, verbose: bool = False, findPid: bool = True) -> str:  # noqa: N802, N803 (Mininet's names)
            """Mininet's, but a shell whose ssh connection is gone raises instead of waiting forever: Mininet keeps its
            end of the shell's terminal open, so a dead ssh client never shows as the end of the output."""
            if not self.isRemote:
                return super().waitOutput(verbose, findPid)
            # Mininet polls its terminal for output *and* writability, so its own timeout never fires (a terminal is
            # always writable) and its read blocks: wait for output alone, half a second at a time
            readable = select.poll()
            readable.register(self.stdout.fileno(), select.POLLIN | select.POLLPRI)
            output = ""
            while self.waiting:
                if self.readbuf or readable.poll(500):
                    output += self.monitor(findPid=findPid)
                elif self.shell.poll() is not None:
                    self.waiting = False
                    raise LabError(f"lost server {self.server}: the ssh connection to {self.name}'s shell ended (ssh exit code "
                                   f"{self.shell.returncode})")
            return output

        def rpopen(self, *cmd: Any, **opts: Any) -> Any:
            """A short command in the server's root namespace (Cluster Edition's), over the agent's connection."""
            if not self.isRemote:
                return super().rpopen(*cmd, **opts)
            words = list(cmd[0]) if len(cmd) == 1 and isinstance(cmd[0], (list, tuple)) else " ".join(map(str, cmd)).split()
            ssh = [*base, "-o", "ControlMaster=no", "-o", f"ControlPath={mux_path(self.server)}", self.dest]
            return Node._popen(self, ssh + words, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               preexec_fn=os.setpgrp)

        def _popen(self, cmd: Any, sudo: bool = True, tt: bool = True, **params: Any) -> Any:
            if not self.isRemote:
                # A node on this machine starts its processes as plain Mininet does. RemoteMixin would put each in a
                # process group of its own, and `mnexec -d` then forks and its parent exits at once: the pid the lab
                # holds would not be the service's.
                return Node._popen(self, cmd.split() if isinstance(cmd, str) else cmd, **params)
            if self.user == "root":
                sudo = False  # no `sudo -E` there: root needs none, and Debian has no sudo by default
            return super()._popen(cmd, sudo=sudo, tt=tt, **params)

    class RemoteHalabHost(HalabRemote, Host):
        pass

    class RemoteLinuxBridge(HalabRemote, LinuxBridge):
        """A Linux bridge on whichever server it was placed on (LinuxBridge runs every command through its shell)."""

    class RemoteTunnelLink(RemoteLink):
        """A veth pair on one server, or a gretap/VXLAN tunnel between two (Cluster Edition's RemoteGRELink, generalised)."""
        key = 0

        def makeIntfPair(self, intfname1: str, intfname2: str, addr1: Any = None, addr2: Any = None,  # noqa: N802 (Mininet's name)
                         node1: Any = None, node2: Any = None, deleteIntfs: bool = True) -> Any:  # noqa: N803
            node1 = self.node1 if node1 is None else node1
            node2 = self.node2 if node2 is None else node2
            if getattr(node1, "server", LOCAL) == getattr(node2, "server", LOCAL):
                from mininet.link import Link

                return Link.makeIntfPair(intfname1, intfname2, addr1, addr2, node1, node2, deleteIntfs=deleteIntfs)
            self.tunnel = 1  # RemoteLink.stop then deletes both ends
            return self._tunnel(node1, node2, intfname1, intfname2, addr1, addr2)

        def _tunnel(self, node1: Any, node2: Any, name1: str, name2: str, addr1: Any, addr2: Any) -> None:
            type(self).key += 1
            # Each end's underlay address: a remote server's own, and for this machine (whose serverIP is
            # 127.0.0.1) the address it reaches the other server from, which the other can answer.
            ip = {id(n): (n.serverIP if n.isRemote else _source_address(n, p.serverIP)) for n, p in ((node1, node2), (node2, node1))}
            for node, name, addr, peer in ((node1, name1, addr1, node2), (node2, name2, addr2, node1)):
                here, there = ip[id(node)], ip[id(peer)]
                if kind == "gre":
                    spec = f"type gretap local {here} remote {there} ttl 64 key {self.key}"
                else:
                    spec = f"type vxlan id {self.key} local {here} remote {there} dstport {VXLAN_PORT}"
                # One command line per end, so one ssh connection for an end on another server (each costs a key exchange)
                script = " && ".join([f"ip link add name {name} {spec}", *([f"ip link set {name} address {addr}"] if addr else []),
                                      f"ip link set {name} mtu {mtu} up", f"ip link set {name} netns {node.pid}"])
                out = node.rcmd(["sh", "-c", shlex.quote(script) if node.isRemote else script])
                if out.strip():
                    raise LabError(f"cluster: could not make the {kind} end {name} on {node.server}: {out.strip()}")

        def stop(self) -> None:
            if self.tunnel:
                for intf in (self.intf1, self.intf2):
                    intf.delete()
                self.tunnel = None
            else:
                super().stop()

    return RemoteHalabHost, RemoteLinuxBridge, RemoteTunnelLink


def _source_address(node: Any, remote_ip: str) -> str:
    """The address ``node``'s server uses to reach ``remote_ip`` (not 127.0.0.1: the peer must be able to answer it)."""
    out = node.rcmd(f"ip -4 route get {remote_ip}")
    words = out.split()
    if "src" not in words:
        raise LabError(f"cluster: {getattr(node, 'server', LOCAL)} has no route to {remote_ip}: {out.strip()}")
    return words[words.index("src") + 1]


def underlay_mtu(address: str) -> int:
    """The MTU of the interface this machine reaches ``address`` through."""
    out = subprocess.run(["ip", "-4", "route", "get", address], capture_output=True, text=True).stdout.split()
    if "dev" not in out:
        raise LabError(f"cluster: no route from this machine to {address}")
    return int(Path(f"/sys/class/net/{out[out.index('dev') + 1]}/mtu").read_text())


def build(topo: Any, settings: ClusterSettings, servers: Servers, say: Any) -> tuple[Any, dict[str, str], str, int]:
    """The MininetCluster for ``topo``, placed and built (not started): (net, placement, tunnel kind, lab MTU)."""
    from mininet.examples.cluster import MininetCluster, Placer

    hosts, switches = topo.hosts(sort=True), topo.switches(sort=True)
    placement = plan.place(hosts, switches, topo.links(sort=True), settings)
    crossing = plan.crossing(topo.links(sort=True), placement)
    kind = servers.tunnel_kind() if crossing else "none"
    mtu = min([plan.inner_mtu(kind, underlay_mtu(server_address(settings, s))) for s in settings.remote] or [1500]) \
        if crossing else 1500
    say(f"cluster: {len(crossing)} link(s) cross between servers, carried by {kind}" + (f"; the lab's MTU is {mtu}" if mtu < 1500 else "")
        if crossing else "cluster: no link crosses between servers")

    class ByPlan(Placer):
        def place(self, node: str) -> str:
            return placement[node]

    host_cls, switch_cls, link_cls = node_classes(settings, kind if crossing else "vxlan", mtu)
    addresses = {LOCAL: "127.0.0.1", **{s: server_address(settings, s) for s in settings.remote}}
    # MininetCluster makes $HOME/.ssh/mn for ssh control sockets that halab does not use: point it into the run directory,
    # so that nothing is left in root's home (ssh itself finds its keys through the password database, not $HOME).
    home = os.environ.get("HOME")
    os.environ["HOME"] = str(servers.run_dir)
    try:
        net = MininetCluster(topo=topo, servers=list(settings.servers), serverIP=addresses, user=settings.user, placement=ByPlan,
                             host=host_cls, switch=switch_cls, link=link_cls, controller=None, autoSetMacs=True, build=False,
                             waitConnected=False, precheck=False)
    finally:
        if home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = home
    return net, placement, kind, mtu
