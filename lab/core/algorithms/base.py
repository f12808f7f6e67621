"""What every balancing algorithm sees: servers, the request, and the interface."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Mapping, Sequence


@dataclass
class Server:
    """A backend as the balancer sees it.

    ``weight`` is the configured weight; ``eweight`` the effective one the
    algorithms use (lower during slow start; set by the Pool). ``active``
    counts in-flight requests.
    """

    name: str
    address: str = ""
    port: int = 80
    weight: int = 1
    backup: bool = False
    up: bool = True
    drain: bool = False  # finish what it has, take nothing new
    disabled: bool = False  # operator took it out of rotation
    ejected: bool = False  # a passive check took it out for a while
    active: int = 0
    picked: int = 0
    index: int = -1  # position in the pool's configuration order, set by Pool
    eweight: float = -1.0  # effective weight; -1 until the Pool sets it
    up_since: float | None = None  # when it last came back UP (slow start)

    @property
    def eligible(self) -> bool:
        return self.up and not self.ejected and not self.drain and not self.disabled and self.weight > 0

    @property
    def w(self) -> float:
        return self.eweight if self.eweight >= 0 else float(self.weight)


@dataclass(frozen=True)
class RequestInfo:
    client: str = ""
    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)


class Algorithm:
    """Chooses one of ``candidates`` (never empty, in configuration order)."""

    name = "abstract"
    # Whether ``choose`` looks at the request (the hashes do). A balancer skips
    # building a RequestInfo per request for the algorithms that do not.
    uses_request = False

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        raise NotImplementedError

    def observe(self, server: Server, latency: float, ok: bool) -> None:
        """Feedback after a request finished (used by least response time)."""

    def table(self, candidates: Sequence[Server], size: int | None = None) -> list[int]:
        """This algorithm as a slot table: ``size`` indices into ``candidates``, for a table-driven data plane.

        A kernel data plane cannot run Python per packet; it looks a slot up
        (nftables ``numgen inc``/``numgen random``/``jhash ... mod size map
        @slots``) and the control plane fills the table from the same code
        the L7 balancer runs. Only algorithms whose choice does not depend on
        live state can be a table; the others (least connections, least
        time, p2c) say so.
        """
        raise TableNotPossible(f"{self.name} decides per request from live state (requests in flight, response times); "
                               "it cannot be a fixed slot table: use an L7 or userspace L4 balancer for it")


class TableNotPossible(ValueError):
    """The algorithm cannot be expressed as a slot table."""


def apportion(weights: Sequence[float], size: int) -> list[int]:
    """``size`` slots shared in proportion to ``weights`` (largest remainder; every positive weight gets a slot if it can)."""
    total = sum(w for w in weights if w > 0)
    if total <= 0 or size <= 0:
        raise ValueError(f"cannot share {size} slots among weights {list(weights)}")
    exact = [size * w / total if w > 0 else 0.0 for w in weights]
    counts = [int(x) for x in exact]
    floor = 1 if size >= sum(1 for w in weights if w > 0) else 0
    for i, w in enumerate(weights):
        if w > 0 and counts[i] < floor:
            counts[i] = floor  # a server that is in the pool is reachable through the table
    while sum(counts) > size:  # the slots given above come from the shares furthest above their exact size
        i = max((k for k in range(len(counts)) if counts[k] > (floor if weights[k] > 0 else 0)), key=lambda k: (counts[k] - exact[k], -k))
        counts[i] -= 1
    by_remainder = sorted(range(len(weights)), key=lambda k: (-(exact[k] - int(exact[k])), k))
    k = 0
    while sum(counts) < size:
        i = by_remainder[k % len(by_remainder)]
        if weights[i] > 0:
            counts[i] += 1
        k += 1
    return counts


def weighted_slots(candidates: Sequence[Server], size: int | None) -> list[int]:
    """Runs of slots per server in configuration order, as many as its whole weight (or apportioned to ``size``):
    the table of every algorithm whose lookup is a hash or a random number (hash, source, random)."""
    whole = [max(1, round(s.w)) for s in candidates]
    return blocks(whole if size is None else apportion(whole, size))


def blocks(counts: Sequence[int]) -> list[int]:
    """Contiguous runs of each index: [2, 1] -> [0, 0, 1] (for hashed or random lookups, order does not matter)."""
    return [i for i, n in enumerate(counts) for _ in range(n)]
