"""Least connections: send the request to the server with the fewest in flight.

A server that answers slowly keeps its requests longer, so it has more in
flight and gets fewer new ones: the algorithm adapts to speed without
measuring it. Plain ``leastconn`` ignores weights and breaks ties by round
robin (HAProxy). ``weighted_leastconn`` compares ``active / weight`` the way
nginx does, without division:

    a is better than b  when  active_a * weight_b < active_b * weight_a

and breaks ties with smooth weighted round robin (nginx
``ngx_http_upstream_least_conn_module.c``).

Good: adapts to slow servers and long requests. Bad: counts connections,
not cost; with short requests all counts are 0 or 1 and it degrades to
round robin; every balancer sees only its own connections.
"""
from __future__ import annotations

import random
from typing import Sequence

from lab.core.algorithms.base import Algorithm, RequestInfo, Server
from lab.core.algorithms.roundrobin import RoundRobin
from lab.core.algorithms.weighted_rr import SmoothWeightedRR


class LeastConnections(Algorithm):
    name = "leastconn"

    def __init__(self) -> None:
        self.tie = RoundRobin()

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        fewest = min(s.active for s in candidates)
        return self.tie.choose([s for s in candidates if s.active == fewest], request, rng)


class WeightedLeastConnections(Algorithm):
    name = "weighted_leastconn"

    def __init__(self) -> None:
        self.tie = SmoothWeightedRR()

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        best = candidates[0]
        for s in candidates[1:]:
            if s.active * best.w < best.active * s.w:
                best = s
        tied = [s for s in candidates if s.active * best.w == best.active * s.w]
        return best if len(tied) == 1 else self.tie.choose(tied, request, rng)
