"""The balancer's choice: which backend gets the next request.

Every balancer in halab (the L7 gateway, the L4 balancer, the tests) asks a
``Pool`` for a server. The pool knows which servers may take traffic at all
(UP, not drained or disabled, backups only when every primary is down) and
hands that list to an ``Algorithm``, which only has to choose among them.
Keeping the two apart means each algorithm is a few lines that can be
tested with exact sequences, and the eligibility rules are written once.

Algorithms see ``RequestInfo`` (client address, path, headers) and a
``random.Random`` passed in, so every choice is reproducible in a test.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Mapping, Sequence


@dataclass
class Server:
    """A backend as the balancer sees it. ``active`` counts in-flight requests."""

    name: str
    address: str = ""
    port: int = 80
    weight: int = 1
    backup: bool = False
    up: bool = True
    drain: bool = False  # finish what it has, take nothing new
    disabled: bool = False  # operator took it out of rotation
    active: int = 0
    picked: int = 0
    index: int = -1  # position in the pool's configuration order, set by Pool

    @property
    def eligible(self) -> bool:
        return self.up and not self.drain and not self.disabled and self.weight > 0


@dataclass(frozen=True)
class RequestInfo:
    client: str = ""
    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)


class Algorithm:
    """Chooses one of ``candidates`` (never empty, in configuration order)."""

    name = "abstract"

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        raise NotImplementedError


class RoundRobin(Algorithm):
    """Each server in turn, a b c a b c ...

    The cursor remembers the position (in configuration order) of the last
    server picked and moves to the next candidate after it, so a server that
    comes back slots into its old place in the cycle instead of reshuffling
    everyone. Weights are ignored here (that is weighted round robin's job).
    Good: simple, fair when servers and requests are alike. Bad: blind to
    load, so a slow server gets as many requests as a fast one.
    """

    name = "roundrobin"

    def __init__(self) -> None:
        self._last = -1

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        nxt = next((s for s in candidates if s.index > self._last), candidates[0])
        self._last = nxt.index
        return nxt


ALGORITHMS: dict[str, type[Algorithm]] = {RoundRobin.name: RoundRobin}


def make_algorithm(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]()
    except KeyError:
        raise ValueError(f"unknown balancing algorithm {name!r}; expected one of: {', '.join(sorted(ALGORITHMS))}") from None


class Pool:
    """The servers of one backend and the rule for choosing among them."""

    def __init__(self, servers: Sequence[Server], algorithm: Algorithm, rng: random.Random | None = None) -> None:
        names = [s.name for s in servers]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate server names in pool: {names}")
        self.servers = list(servers)
        self.by_name = {s.name: s for s in self.servers}
        for index, server in enumerate(self.servers):
            server.index = index
        self.algorithm = algorithm
        self.rng = rng or random.Random()

    def candidates(self) -> list[Server]:
        """Eligible primaries; if none, eligible backups (HAProxy ``backup``)."""
        primaries = [s for s in self.servers if not s.backup and s.eligible]
        if primaries:
            return primaries
        return [s for s in self.servers if s.backup and s.eligible]

    def pick(self, request: RequestInfo | None = None, exclude: Sequence[str] = ()) -> Server | None:
        """The server for this request, or None when no server may take it (answer 503)."""
        candidates = [s for s in self.candidates() if s.name not in exclude]
        if not candidates:
            return None
        server = self.algorithm.choose(candidates, request or RequestInfo(), self.rng)
        server.picked += 1
        return server

    def __getitem__(self, name: str) -> Server:
        return self.by_name[name]
