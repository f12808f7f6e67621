"""halab's hands on another server of a cluster lab: ``python -m lab.net.agent``, started over ssh.

The lab on the first server talks to one agent per other server through the
agent's stdin and stdout, one JSON object per line each way. The agent holds
that server's lab slot (the same ``flock`` and ledger as a lab of its own, in
``/run/halab/served``, so a lab on that server and a lab served by it never
mix their records) and records there what the lab creates on it: switches,
interfaces, the services' processes. It signals those processes by their
recorded pid and start time, reads and writes the run's files when the two
servers do not share a filesystem, and reads its clock for the offset
estimate.

When its stdin ends (the lab closed it, or the lab or the ssh connection
died), it removes everything its ledger lists and exits: a lab that crashes
leaves nothing behind on the servers it used, and ``halab clean`` only has
to start an agent and close it again to clean a server after a power cut.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lab.events import parse_lines
from lab.net import features
from lab.net.state import STATE_DIR, LabBusy, LabLock, _signal, kill_session, process_start_time
from lab.services.runtime import call

SERVED_DIR = STATE_DIR / "served"
HEARTBEAT = 2.0  # seconds between the lab's heartbeats to each agent
IDLE = 5 * HEARTBEAT  # an agent that hears nothing for this long counts its lab as gone


class Agent:
    def __init__(self, lock: LabLock) -> None:
        self.lock = lock

    @property
    def ledger(self) -> Any:
        return self.lock.ledger

    def hello(self, token_path: str = "", **_: Any) -> dict[str, Any]:
        """Who this is and what it can do; ``token_path``: a file the lab wrote, read back to tell a shared filesystem."""
        token = Path(token_path).read_text() if token_path and Path(token_path).is_file() else ""
        return {"host": socket.gethostname(), "pid": os.getpid(), "python": sys.executable, "token": token,
                "tunnels": features.tunnel_kinds()}

    def doctor(self, **_: Any) -> dict[str, Any]:
        """What `halab doctor --cluster` asks of a server: programs missing, whether hosts can start, and its firewall."""
        from lab.net.commands import missing

        try:
            features.preflight()
            hosts = ""
        except Exception as e:  # noqa: BLE001 - said to the instructor as it is
            hosts = str(e)
        ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout if shutil.which("nft") else ""
        return {"missing": [f"{cmd} (apt install {pkg})" for cmd, pkg, _ in missing()], "hosts": hosts,
                "dropping_input": dropping_input_chains(ruleset)}

    def time(self, **_: Any) -> float:
        return time.time()

    def record(self, kind: str, name: str = "", pid: int = 0, what: str = "", session: bool = False, **_: Any) -> None:
        if kind == "interface":
            self.ledger.add_interface(name)
        elif kind == "process":
            self.ledger.add_process(pid, what, session=session)
        elif kind == "path":
            self.ledger.add_path(name)
        else:
            raise ValueError(f"nothing to record of kind {kind!r}")

    def signal(self, pid: int, sig: int, session: bool = False, **_: Any) -> list[int]:
        """Signal a recorded process (its whole session with ``session``); a pid the ledger does not hold is refused."""
        entry = next((p for p in self.ledger.data["processes"] if p["pid"] == pid), None)
        if entry is None:
            raise ValueError(f"process {pid} is not in this server's ledger")
        if session:
            return kill_session(pid, sig)
        if process_start_time(pid) == entry["start"]:
            _signal(pid, sig)
            return [pid]
        return []

    def alive(self, pid: int, **_: Any) -> bool:
        entry = next((p for p in self.ledger.data["processes"] if p["pid"] == pid), None)
        return entry is not None and process_start_time(pid) == entry["start"]

    def ready_pid(self, path: str, offset: int, **_: Any) -> int | None:
        """The pid in the first ``service_ready`` event written to ``path`` after byte ``offset``."""
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except OSError:
            return None
        complete = chunk[: chunk.rfind(b"\n") + 1].decode("utf-8", "replace")
        return next((e["pid"] for e in parse_lines(complete.splitlines()) if e.get("kind") == "service_ready"), None)

    def size(self, path: str, **_: Any) -> int:
        try:
            return os.path.getsize(path)
        except OSError:
            return 0

    def write(self, path: str, text: str, **_: Any) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)

    def mkdir(self, path: str, **_: Any) -> None:
        """A directory the lab needs here; recorded (so removed at the end) only if this made it."""
        if not Path(path).exists():
            Path(path).mkdir(parents=True)
            self.ledger.add_path(path)

    def read(self, path: str, **_: Any) -> str:
        return Path(path).read_text(errors="replace")

    def listdir(self, path: str, pattern: str = "*", **_: Any) -> list[str]:
        return sorted(str(p) for p in Path(path).glob(pattern))

    def control(self, path: str, cmd: str, args: dict[str, Any], **_: Any) -> Any:
        """A command to a service's control socket on this server (lab.services.runtime.call)."""
        return call(path, cmd, **args)

    def cleanup(self, **_: Any) -> list[str]:
        return self.ledger.cleanup()


def dropping_input_chains(ruleset: str) -> list[str]:
    """The nftables chains (iptables' too, through iptables-nft) on the input hook whose policy drops: a tunnel needs a rule there."""
    out, table, chain = [], "", ""
    for line in ruleset.splitlines():
        words = line.split()
        if words[:1] == ["table"] and len(words) >= 3:
            table = f"{words[1]} {words[2]}"
        elif words[:1] == ["chain"] and len(words) >= 2:
            chain = words[1]
        elif "hook input" in line and "policy drop" in line:
            out.append(f"{table} {chain}")
    return out


def serve(stdin: Any, stdout: Any, state_dir: Path, idle: float | None = None) -> int:
    """Answer the lab's requests until its input ends, or until ``idle`` seconds pass without one (the lab sends a
    heartbeat every ``HEARTBEAT`` s, so silence means its connection is gone even where TCP has not noticed yet)."""
    lock = LabLock(state_dir)
    try:
        cleaned = lock.acquire("served to another server's lab", "-")
    except LabBusy as e:
        stdout.write(json.dumps({"ok": False, "error": f"{socket.gethostname()}: {e}"}) + "\n")
        stdout.flush()
        return 1
    agent = Agent(lock)
    stdout.write(json.dumps({"ok": True, "result": {"cleaned": cleaned}}) + "\n")
    stdout.flush()
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stdin:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        while True:
            try:
                line = lines.get(timeout=idle)
            except queue.Empty:
                break  # the lab has gone silent: clean up rather than hold this server for a lab that is gone
            if line is None:
                break
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                op = request.pop("op")
                if op.startswith("_") or not callable(getattr(agent, op, None)):
                    raise ValueError(f"no operation {op!r}")
                reply = {"ok": True, "result": getattr(agent, op)(**request)}
            except Exception as e:  # one bad request is answered, not fatal: the lab keeps its agent
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            stdout.write(json.dumps(reply) + "\n")
            stdout.flush()
    finally:
        agent.cleanup()
        lock.release()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=None, help="seconds without a request after which the lab counts as gone")
    parser.add_argument("state_dir", nargs="?", default=str(SERVED_DIR))
    args = parser.parse_args()
    return serve(sys.stdin, sys.stdout, Path(args.state_dir), args.idle)


if __name__ == "__main__":
    sys.exit(main())
