"""Seeded chaos: a random fault timeline drawn from a topology's own parts (pure: no I/O).

``draw`` picks faults the way an unlucky week would: a cable pulled and
plugged back, a cable that flaps, a machine powered off and on, a process
killed and restarted, a process frozen and thawed, two machines that stop
hearing each other. Every fault is repaired before the load ends, with
``settle`` seconds left to come back to a steady state, and faults that
overlap in time never touch the same machine (a cable plugged back into a
powered-off host would be a timeline the real world cannot produce).

The same layout, duration, seed and settings always give the same
timeline, so a failing run is a seed you can replay, and ``as_toml`` writes
it as ``[[faults]]`` tables you can keep.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from lab.core.faults import ACTIONS, CHAOS_KINDS, LINK, NODE, PAIR, REPAIR_OF, REPAIRS
from lab.core.roles import SERVICE_ROLES
from lab.core.scenario import Layout

KINDS = {kind: (fault, REPAIR_OF[fault]) for kind, fault in CHAOS_KINDS.items()}  # kind -> (fault, its repair)
FLAP_STEP = 0.3  # seconds between the transitions of a flapping link
FLAPS = 3


@dataclass(frozen=True)
class ChaosSettings:
    faults: int = 3  # fault-and-repair pairs per run
    kinds: tuple[str, ...] = tuple(KINDS)
    min_hold: float = 1.0  # seconds a fault lasts, at least ...
    max_hold: float = 4.0  # ... and at most
    settle: float = 5.0  # seconds between the last repair and the end of the load
    first: float = 1.0  # no fault before this many seconds of load

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown chaos kind {unknown[0]!r} (known: {', '.join(KINDS)})")
        if not 0 < self.min_hold <= self.max_hold:
            raise ValueError(f"need 0 < min_hold <= max_hold (got {self.min_hold}, {self.max_hold})")
        if self.faults < 0:
            raise ValueError("faults must be >= 0")


@dataclass(frozen=True)
class Target:
    kind: str
    name: str  # a node, a link 'a-b' or a pair 'a/b'
    nodes: frozenset[str]  # the machines it touches (overlapping faults must not share one)


def targets(layout: Layout, kinds: tuple[str, ...]) -> list[Target]:
    """What chaos may break in this topology. Clients are the observers: their own cables stay in."""
    roles = layout.nodes
    services = [n for n, r in roles.items() if r in SERVICE_ROLES]
    out = []
    for a, b in layout.links:
        if roles.get(a) == "client" or roles.get(b) == "client":
            continue
        for kind in _kinds(LINK):
            if kind in kinds:
                out.append(Target(kind, f"{a}-{b}", frozenset((a, b))))
    for node in services:
        for kind in _kinds(NODE):
            if kind in kinds:
                out.append(Target(kind, node, frozenset((node,))))
    if any(kind in kinds for kind in _kinds(PAIR)):
        balancers = sorted(n for n in services if roles[n] == "balancer")
        origins = sorted(n for n in services if roles[n] == "origin")
        pairs = [(a, b) for i, a in enumerate(balancers) for b in balancers[i + 1:]] + [(g, o) for g in balancers for o in origins]
        out += [Target(kind, f"{a}/{b}", frozenset((a, b))) for kind in _kinds(PAIR) if kind in kinds for a, b in pairs]
    return out


def _kinds(target: str) -> tuple[str, ...]:
    """The chaos kinds whose fault acts on this kind of target, in table order (seeds replay the same draws)."""
    return tuple(kind for kind, fault in CHAOS_KINDS.items() if ACTIONS[fault].target == target)


def draw(layout: Layout, duration: float, seed: int, settings: ChaosSettings = ChaosSettings()) -> list[dict[str, Any]]:
    """A fault timeline as ``[[faults]]`` entries (at, action, target, note), in time order."""
    rng = random.Random(seed)
    pool = targets(layout, settings.kinds)
    last_end = duration - settings.settle
    if not pool or last_end - settings.first < settings.min_hold or settings.faults == 0:
        return []
    busy: list[tuple[float, float, frozenset[str]]] = []
    entries: list[dict[str, Any]] = []
    for number in range(settings.faults):
        for _ in range(100):  # a few tries to fit one more fault; a crowded timeline just gets fewer
            target = rng.choice(pool)
            hold = FLAP_STEP * (2 * FLAPS - 1) if target.kind == "flap" else rng.uniform(settings.min_hold, settings.max_hold)
            if last_end - settings.first < hold:
                continue
            start = round(rng.uniform(settings.first, last_end - hold), 2)
            end = round(start + hold, 2)
            # overlapping in time (with a margin) means disjoint machines
            if any(start <= b + 0.5 and a <= end + 0.5 and nodes & target.nodes for a, b, nodes in busy):
                continue
            busy.append((start, end, target.nodes))
            entries += _entries(target, start, end, number)
            break
    return sorted(entries, key=lambda e: (e["at"], e["action"] in REPAIRS))


def _entries(target: Target, start: float, end: float, number: int) -> list[dict[str, Any]]:
    fault, repair = KINDS[target.kind]
    note = f"chaos #{number + 1}: {target.kind}"
    if target.kind != "flap":
        return [{"at": start, "action": fault, "target": target.name, "note": note},
                {"at": end, "action": repair, "target": target.name, "note": note}]
    steps = []
    for i in range(2 * FLAPS):
        steps.append({"at": round(start + i * FLAP_STEP, 2), "action": fault if i % 2 == 0 else repair, "target": target.name, "note": note})
    return steps


def as_toml(entries: list[dict[str, Any]]) -> str:
    """The timeline as ``[[faults]]`` tables, to paste into a scenario."""
    blocks = []
    for e in entries:
        blocks.append("\n".join(["[[faults]]", f"at = {e['at']}", f'action = "{e["action"]}"', f'target = "{e["target"]}"',
                                 f'note = "{e["note"]}"']))
    return "\n\n".join(blocks) + ("\n" if blocks else "")
