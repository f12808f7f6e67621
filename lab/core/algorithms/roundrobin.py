"""Round robin: each server in turn, a b c a b c ...

The cursor remembers the position (in configuration order) of the last
server picked and moves to the next candidate after it, so a server that
comes back slots into its old place in the cycle instead of reshuffling
everyone. Weights are ignored (that is weighted round robin's job).

Good: simple, predictable, fair when servers and requests are alike.
Bad: blind to load; a slow server gets as many requests as a fast one, and
long requests pile up on it.
"""
from __future__ import annotations

import random
from typing import Sequence

from lab.core.algorithms.base import Algorithm, RequestInfo, Server


class RoundRobin(Algorithm):
    name = "roundrobin"

    def __init__(self) -> None:
        self._last = -1

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        for server in candidates:  # the first one after the last pick, in configuration order
            if server.index > self._last:
                break
        else:
            server = candidates[0]  # past the end: start the cycle again
        self._last = server.index
        return server

    def table(self, candidates: Sequence[Server], size: int | None = None) -> list[int]:
        """Each candidate in turn (nftables ``numgen inc mod size``); weights ignored, as in ``choose``."""
        size = len(candidates) if size is None else size
        return [i % len(candidates) for i in range(size)]
