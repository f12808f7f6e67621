"""Weighted round robin, nginx's "smooth" version.

Each server has a running score ``current``. For every pick, every
candidate's score grows by its weight; the highest score wins (the first in
configuration order on a tie) and pays back the total of all weights:

    for s in candidates: s.current += s.weight;  total += s.weight
    best = max(current);  best.current -= total

With weights a=5, b=1, c=1 the order is ``a a b a c a a``: a gets 5 of every
7 requests, like a plain "a a a a a b c" would give, but spread out so b and
c are not starved for five requests in a row and a is never hit in a burst.
(nginx ``src/http/ngx_http_upstream_round_robin.c``, ``ngx_http_upstream_get_peer``.)

Good: honours capacity differences, smooth, deterministic. Bad: weights are
static guesses; it does not see that a server got slow.
"""
from __future__ import annotations

import random
from typing import Sequence

from lab.core.algorithms.base import Algorithm, RequestInfo, Server, apportion


class SmoothWeightedRR(Algorithm):
    name = "weighted_roundrobin"

    def __init__(self) -> None:
        self.current: dict[str, float] = {}

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        total = 0.0
        best: Server | None = None
        for s in candidates:
            self.current[s.name] = self.current.get(s.name, 0.0) + s.w
            total += s.w
            if best is None or self.current[s.name] > self.current[best.name]:
                best = s
        assert best is not None
        self.current[best.name] -= total
        return best

    def table(self, candidates: Sequence[Server], size: int | None = None) -> list[int]:
        """One period of the smooth sequence (``numgen inc mod size``): with size = the sum of weights, exactly ``choose``'s order."""
        weights = [max(0.0, s.w) for s in candidates]
        if size is None:
            size = int(sum(round(w) for w in weights)) or len(candidates)
        counts = apportion(weights, size)
        current = [0] * len(candidates)
        out = []
        for _ in range(size):
            for i, n in enumerate(counts):
                current[i] += n
            best = max(range(len(counts)), key=lambda i: (current[i], -i))  # first in configuration order on a tie
            current[best] -= size
            out.append(best)
        return out
