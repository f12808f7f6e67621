"""Random, and the power of two choices.

``random`` picks a server at random, in proportion to weight. With many
requests it spreads load like weighted round robin, with no shared state at
all: several balancers need not agree on anything. But luck is lumpy: some
server is always a little unlucky.

``p2c`` (power of two choices; HAProxy ``random(2)``, Envoy least request,
nginx ``random two least_conn``) draws two servers at random and sends the
request to the one with fewer requests in flight. That single comparison
removes most of the lumpiness (Mitzenmacher 2001: the maximum load drops
from log n / log log n to log log n), at the cost of knowing ``active``.
"""
from __future__ import annotations

import random
from typing import Sequence

from lab.core.algorithms.base import Algorithm, RequestInfo, Server, weighted_slots


def weighted_draw(candidates: Sequence[Server], rng: random.Random) -> Server:
    total = sum(s.w for s in candidates)
    if total <= 0:
        return candidates[rng.randrange(len(candidates))]
    x = rng.random() * total
    for s in candidates:
        x -= s.w
        if x < 0:
            return s
    return candidates[-1]


class Random(Algorithm):
    name = "random"

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        return weighted_draw(candidates, rng)

    def table(self, candidates: Sequence[Server], size: int | None = None) -> list[int]:
        """Slots in proportion to weight, looked up by ``numgen random mod size``."""
        return weighted_slots(candidates, size)


class PowerOfTwo(Algorithm):
    name = "p2c"

    def __init__(self, draws: int = 2) -> None:
        self.draws = draws  # HAProxy random(N): default 2

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        picks = [weighted_draw(candidates, rng) for _ in range(self.draws)]
        return min(picks, key=lambda s: s.active / s.w if s.w > 0 else float("inf"))
