"""One lab per machine, and an exact record of what it created.

Mininet switches and their ports live in the root network namespace, so two
labs would collide. ``LabLock`` is an ``flock`` on ``/run/halab/lock`` held
for the life of the lab process; a second lab gets ``LabBusy`` naming the
first (pid, scenario, start time, run directory).

``Ledger`` is the record: every interface (name and ifindex), process (pid
and kernel start time, so a recycled pid is never killed) and file the lab
made, rewritten atomically each time something is added. ``cleanup`` undoes
exactly those, and is what ``halab clean`` runs after a crash. No pattern
matching on names and no blanket Mininet or process sweeps: what is not in the ledger is
not ours.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_DIR = Path(os.environ.get("HALAB_STATE_DIR", "/run/halab"))


class LabBusy(RuntimeError):
    """Another lab holds the machine."""


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if it is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    if fields[0] == "Z":  # dead, only not yet reaped by its parent: nothing left to signal or wait for
        return None
    return int(fields[19])  # field 22 of stat(5), counted after "pid (comm)"


def session_members(sid: int) -> list[int]:
    """Every live process in session ``sid``.

    Services start through ``mnexec -d``, which calls setsid(), so each one
    leads a session of its own and whatever it forks (HAProxy, keepalived's
    VRRP child) stays in it. Linux never hands out a pid that is still some
    process's session id, so while any member lives, ``sid`` still means
    "ours": killing by session is exact, even after the leader died.
    """
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry))
    return members


def kill_session(sid: int, sig: int = signal.SIGKILL) -> list[int]:
    killed = session_members(sid)
    for pid in killed:
        _signal(pid, sig)
    return killed


def ifindex(name: str) -> int | None:
    try:
        return int(Path(f"/sys/class/net/{name}/ifindex").read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Ledger:
    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> "Ledger":
        data = json.loads(path.read_text()) if path.exists() else {}
        data.setdefault("interfaces", [])
        data.setdefault("processes", [])
        data.setdefault("paths", [])
        data.setdefault("servers", [])  # the other servers of a cluster lab: each keeps a ledger of its own (lab.net.agent)
        return cls(path, data)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        os.replace(tmp, self.path)

    def add_interface(self, name: str) -> None:
        """Record a root-namespace interface (its ifindex too, once it exists)."""
        entry = {"name": name, "ifindex": ifindex(name)}
        self.data["interfaces"] = [i for i in self.data["interfaces"] if i["name"] != name] + [entry]
        self.save()

    def add_process(self, pid: int, what: str, session: bool = False) -> None:
        """Record a process; ``session``: it leads a session whose members are ours too."""
        self.data["processes"].append({"pid": pid, "start": process_start_time(pid), "what": what, "session": session})
        self.save()

    def add_path(self, path: str | os.PathLike[str]) -> None:
        self.data["paths"].append(str(path))
        self.save()

    @property
    def empty(self) -> bool:
        return not (self.data["interfaces"] or self.data["processes"] or self.data["paths"] or self.data["servers"])

    def cleanup(self, grace: float = 2.0) -> list[str]:
        """Remove everything recorded; return one line per thing removed."""
        done: list[str] = []
        alive = [p for p in self.data["processes"] if p["start"] is not None and process_start_time(p["pid"]) == p["start"]]
        for p in alive:
            _signal(p["pid"], signal.SIGCONT)  # a paused process cannot act on SIGTERM
            # a host's interactive shell ignores SIGTERM and ends on SIGHUP (a daemon may take SIGHUP as "reload")
            _signal(p["pid"], signal.SIGHUP if p["what"].endswith("shell") else signal.SIGTERM)
        deadline = time.time() + grace
        while time.time() < deadline and any(process_start_time(p["pid"]) == p["start"] for p in alive):
            time.sleep(0.05)
        for p in alive:
            if process_start_time(p["pid"]) == p["start"]:
                _signal(p["pid"], signal.SIGKILL)
            done.append(f"process {p['pid']} ({p['what']})")
        for p in self.data["processes"]:  # children a killed leader left behind (a daemon's workers)
            if p.get("session"):
                done += [f"process {pid} (left by {p['what']})" for pid in kill_session(p["pid"])]
        for entry in reversed(self.data["interfaces"]):
            current = ifindex(entry["name"])
            if current is None or (entry["ifindex"] is not None and current != entry["ifindex"]):
                continue  # gone already, or a different interface now has that name: not ours
            subprocess.run(["ip", "link", "del", entry["name"]], capture_output=True)
            done.append(f"interface {entry['name']}")
        for path in self.data["paths"]:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
                done.append(f"directory {path}")
            elif os.path.exists(path):
                os.unlink(path)
                done.append(f"file {path}")
        if self.data["servers"]:  # after the processes: the ssh connections to their agents are ended, so each cleans its server
            from lab.net.cluster import clean_server

            for entry in self.data["servers"]:
                done += clean_server(entry)
        self.data = {"interfaces": [], "processes": [], "paths": [], "servers": []}
        self.path.unlink(missing_ok=True)
        return done


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class LabLock:
    """Exclusive ownership of the machine's lab slot, plus its ledger."""

    def __init__(self, state_dir: Path = STATE_DIR) -> None:
        self.dir = state_dir
        self.fd: int | None = None
        self.ledger: Ledger | None = None

    def acquire(self, scenario: str, run_dir: str) -> list[str]:
        """Take the slot; clean what a crashed lab left behind; return what was cleaned."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise LabBusy(describe_owner(self.dir)) from None
        self.fd = fd
        ledger = Ledger.open(self.dir / "ledger.json")
        cleaned = [] if ledger.empty else ledger.cleanup()
        self.ledger = Ledger.open(self.dir / "ledger.json")
        owner = {"pid": os.getpid(), "scenario": scenario, "run_dir": run_dir, "started": time.time()}
        (self.dir / "owner.json").write_text(json.dumps(owner))
        return cleaned

    def release(self) -> None:
        if self.fd is not None:
            (self.dir / "owner.json").unlink(missing_ok=True)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def describe_owner(state_dir: Path = STATE_DIR) -> str:
    try:
        owner = json.loads((state_dir / "owner.json").read_text())
    except (OSError, ValueError):
        return "another halab lab is running on this machine (no details recorded)"
    started = time.strftime("%H:%M:%S", time.localtime(owner["started"]))
    return (f"another halab lab is running on this machine: pid {owner['pid']}, scenario {owner['scenario']!r}, "
            f"started {started}, run directory {owner['run_dir']}. Only one Mininet network fits on a machine; "
            f"stop that one first (Ctrl-C in its terminal, or `sudo kill {owner['pid']}`).")


def clean(state_dir: Path = STATE_DIR) -> list[str]:
    """``halab clean``: remove what a crashed lab left, refusing while a lab is alive."""
    lock = LabLock(state_dir)
    try:
        return lock.acquire("halab clean", "-")  # acquiring cleans a stale ledger
    finally:
        lock.release()
