"""The balancer's choice: which backend gets the next request.

Every balancer in halab asks a ``Pool`` for a server. The pool knows which
servers may take traffic at all (UP, not drained or disabled, weight > 0,
backups only when every primary is down), sets each one's effective weight
(slow start), and hands the list to an ``Algorithm`` (``lab.core.algorithms``),
which only has to choose among them. Keeping the two apart means each
algorithm is a few lines tested with exact sequences, and the eligibility
rules are written once.

Time (``now``) and randomness (``rng``) are passed in, so every choice is
reproducible in a test.
"""
from __future__ import annotations

import random
from typing import Sequence

from lab.core.algorithms import ALGORITHMS, Algorithm, RequestInfo, Server, make_algorithm

NO_REQUEST = RequestInfo()  # for algorithms that do not look at the request (frozen: safe to share)

__all__ = ["ALGORITHMS", "Algorithm", "Pool", "RequestInfo", "Server", "make_algorithm", "slowstart_weight"]


def slowstart_weight(weight: int, up_since: float | None, now: float, window: float) -> float:
    """HAProxy ``slowstart``: after a server comes back, its weight grows linearly
    from 1/window-th to 100% over ``window`` seconds (never below 1 step), so a
    cold server (empty caches, JIT) is not flooded the moment it is UP."""
    if window <= 0 or up_since is None:
        return float(weight)
    elapsed = now - up_since
    if elapsed >= window:
        return float(weight)
    return max(weight * max(elapsed, 0.0) / window, weight / 100)  # floor: 1% of the weight


class Pool:
    """The servers of one backend and the rule for choosing among them."""

    def __init__(self, servers: Sequence[Server], algorithm: Algorithm, rng: random.Random | None = None,
                 slowstart: float = 0.0) -> None:
        names = [s.name for s in servers]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate server names in pool: {names}")
        self.servers = list(servers)
        self.by_name = {s.name: s for s in self.servers}
        for index, server in enumerate(self.servers):
            server.index = index
        self.algorithm = algorithm
        self.rng = rng or random.Random()
        self.slowstart = slowstart

    def candidates(self) -> list[Server]:
        """Eligible primaries; if none, eligible backups (HAProxy ``backup``)."""
        primaries = [s for s in self.servers if not s.backup and s.eligible]
        if primaries:
            return primaries
        return [s for s in self.servers if s.backup and s.eligible]

    def set_up(self, name: str, up: bool, now: float) -> None:
        """Health verdict from a checker; a server coming back starts its slow start."""
        server = self.by_name[name]
        if up and not server.up:
            server.up_since = now
        server.up = up

    def pick(self, request: RequestInfo | None = None, exclude: Sequence[str] = (), now: float = 0.0) -> Server | None:
        """The server for this request, or None when no server may take it (answer 503)."""
        candidates = self.candidates()
        if exclude:
            candidates = [s for s in candidates if s.name not in exclude]
        if not candidates:
            return None
        if self.slowstart > 0:  # otherwise every effective weight is the configured one (eweight -1)
            for s in candidates:
                s.eweight = slowstart_weight(s.weight, s.up_since, now, self.slowstart)
        server = self.algorithm.choose(candidates, request or NO_REQUEST, self.rng)
        server.picked += 1
        return server

    def finished(self, server: Server, latency: float, ok: bool) -> None:
        self.algorithm.observe(server, latency, ok)

    def __getitem__(self, name: str) -> Server:
        return self.by_name[name]
