"""Which keys a hashing balancer moved when a server left (or came back).

With ``hash``, ``consistent`` or ``maglev`` balancing, every key (here: the
request's path) belongs to one server. When a server leaves, its keys must
move; the question that separates the algorithms is how many *other* keys
move with them. Mod-N hashing moves most of them (N changed, so nearly
every ``hash % N`` changes); a consistent-hash ring moves none; Maglev moves
a few percent. A moved key is a cold cache and a lost session.

The mapping is read from what the clients saw: each ``request_finished``
event names the path and the origin that served it (``served_by``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class KeyMoves:
    keys: int  # keys answered both before the change and after it
    moved: int  # of those, how many a different server answered after
    from_changed: int  # keys that were on the server that left (they had to move)
    others_moved: int  # keys that were elsewhere and moved anyway

    @property
    def fraction(self) -> float:
        return self.moved / self.keys if self.keys else 0.0

    @property
    def others_fraction(self) -> float:
        """Share of the keys that did not have to move that moved anyway."""
        others = self.keys - self.from_changed
        return self.others_moved / others if others else 0.0


def owners(requests: Sequence[Mapping[str, Any]], start: float, end: float) -> dict[str, str]:
    """path -> the server that last answered it successfully between ``start`` and ``end``."""
    out: dict[str, str] = {}
    for r in sorted(requests, key=lambda r: r["t"]):
        if start <= r["t"] < end and r.get("ok") and r.get("path") and r.get("served_by"):
            out[r["path"]] = r["served_by"]
    return out


def key_moves(requests: Sequence[Mapping[str, Any]], before: tuple[float, float], after: tuple[float, float],
              server: str) -> KeyMoves:
    """Compare the owners of each key in two windows; ``server`` is the one that left or returned."""
    old, new = owners(requests, *before), owners(requests, *after)
    both = old.keys() & new.keys()
    moved = {k for k in both if old[k] != new[k]}
    on_server = {k for k in both if server in (old[k], new[k])}
    return KeyMoves(len(both), len(moved), len(on_server), len(moved - on_server))
