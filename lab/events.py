"""The event log: one JSON object per line, one file per service, per run.

Every decision a service makes (routed a request, marked a server DOWN,
answered a probe) and every fault the lab applies is appended here with a
wall-clock timestamp ``t`` (seconds since the epoch, shared by all network
namespaces on the machine). The live view tails these files and the report
is computed from them alone, so a run can be re-examined offline.

Files are line-buffered: an event is on disk as soon as it is emitted, so a
service killed with SIGKILL (a "crash" fault) loses nothing it said.

Every kind of event, with its fields and their types, is declared once in
``KINDS`` (lab/event_kinds.py). A unit test reads every ``emit`` in the code
against it, the integration tests check every event of every run they
make, and ``check`` says what is wrong with one event.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from lab.event_kinds import COMMON, KINDS

EVENTS_DIR = "events"
CLOCKS = "clocks.json"


class EventLog:
    def __init__(self, path: str | os.PathLike[str], node: str, service: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.node = node
        self.service = service
        self._file = open(self.path, "a", buffering=1, encoding="utf-8")

    def emit(self, kind: str, t: float | None = None, **fields: Any) -> dict[str, Any]:
        event = {"t": time.time() if t is None else t, "node": self.node, "service": self.service, "kind": kind}
        event.update(fields)
        self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
        return event

    def close(self) -> None:
        self._file.close()


def event_path(run_dir: str | os.PathLike[str], node: str, service: str) -> Path:
    return Path(run_dir) / EVENTS_DIR / f"{node}-{service}.jsonl"


def parse_lines(lines: Iterable[str], source: str = "") -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            # A torn last line from a killed writer; anything else is worth saying.
            raise ValueError(f"{source}:{number}: not a JSON event: {line[:80]!r}") from None


def read_events(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every event of a run, ordered by time.

    A lab over several servers left ``clocks.json``: each node's server and
    each server's clock offset. Events are then put on this machine's clock
    (lab.core.cluster.merge) before they are ordered."""
    from lab.core.cluster import LOCAL, merge

    placement, offsets = read_clocks(Path(run_dir))
    streams: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((Path(run_dir) / EVENTS_DIR).glob("*.jsonl")):
        text = path.read_text(encoding="utf-8")
        complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
        for event in parse_lines(complete.splitlines(), str(path)):
            streams.setdefault(placement.get(event.get("node", ""), LOCAL), []).append(event)
    return merge(streams, offsets)


def write_clocks(run_dir: Path, placement: Mapping[str, str], offsets: Mapping[str, Any], shared: Mapping[str, bool]) -> None:
    """``clocks.json`` of a lab over several servers: which server each node ran on, and each server's clock offset
    (lab.core.cluster.Offset), for reading the run's events as one timeline."""
    (Path(run_dir) / CLOCKS).write_text(json.dumps({
        "nodes": dict(placement),
        "servers": {s: {"offset": o.offset, "bound": o.bound, "rtt": o.rtt, "samples": o.samples, "shared_files": shared.get(s, True)}
                    for s, o in offsets.items()},
    }, indent=1))


def read_clocks(run_dir: str | os.PathLike[str]) -> tuple[dict[str, str], dict[str, Any]]:
    """(node -> server, server -> Offset) of a cluster lab's run; empty for a run on one machine."""
    from lab.core.cluster import Offset

    path = Path(run_dir) / CLOCKS
    if not path.exists():
        return {}, {}
    data = json.loads(path.read_text())
    return data["nodes"], {s: Offset(v["offset"], v["bound"], v["rtt"], v["samples"]) for s, v in data["servers"].items()}


class Tail:
    """Reads what was appended to a run's event files since the last call."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(run_dir) / EVENTS_DIR
        self.offsets: dict[Path, int] = {}

    def poll(self) -> list[dict[str, Any]]:
        new: list[dict[str, Any]] = []
        for path in sorted(self.dir.glob("*.jsonl")):
            offset = self.offsets.get(path, 0)
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1  # only whole lines; the rest next time
            if end:
                self.offsets[path] = offset + end
                new.extend(parse_lines(chunk[:end].decode("utf-8").splitlines(), str(path)))
        new.sort(key=lambda e: e["t"])
        return new


def node_names(built: Mapping[str, Any]) -> dict[str, str]:
    """Address -> node, from a ``lab_built`` event: every node's address and every address of its interfaces
    (a router's, a gateway's second network), for naming what a capture or a request saw."""
    names = {address: node for node, address in built.get("addresses", {}).items()}
    names.update({a: node for node, addresses in built.get("interfaces", {}).items() for a in addresses})
    return names


def check(event: Mapping[str, Any]) -> list[str]:
    """What is wrong with one event against its declaration (an empty list: nothing)."""
    kind = event.get("kind")
    declared = KINDS.get(kind)  # type: ignore[arg-type]
    if declared is None:
        return [f"undeclared kind {kind!r}"]
    problems = [f"{kind}: missing {name}" for name in declared.required if name not in event]
    for name, value in event.items():
        spec = COMMON.get(name) or declared.fields.get(name)
        if spec is None:
            problems.append(f"{kind}: undeclared field {name!r}")
        elif not spec.accepts(value):
            problems.append(f"{kind}.{name}: {value!r} is not {spec}")
    return problems
