"""Least response time: prefer the server that has been answering fastest.

Each server keeps an exponentially weighted moving average (EWMA) of the
latency of its recent answers, ``ewma = ewma + alpha * (sample - ewma)``,
with alpha 0.3 (about the last 6 samples matter). The cost of sending it one
more request also grows with the requests it is already handling, so:

    cost = ewma_latency * (active + 1) / weight

and the cheapest candidate wins (ties: round robin). A server never
measured yet costs 0, so it is tried first. This is the "peak EWMA" idea of
Twitter's Finagle and Linkerd, without their decay in time; NGINX Plus
``least_time`` and HAProxy agents are the commercial cousins.

Good: steers away from a server that got slow (GC pause, noisy neighbour,
bad disk) before any health check fails. Bad: needs feedback from finished
requests, reacts with a lag, and a server that errors *fast* looks fast, so
failed answers are counted at a penalty (``timeout_penalty``).
"""
from __future__ import annotations

import random
from typing import Sequence

from lab.core.algorithms.base import Algorithm, RequestInfo, Server
from lab.core.algorithms.roundrobin import RoundRobin

ALPHA = 0.3


class LeastResponseTime(Algorithm):
    name = "least_time"

    def __init__(self, alpha: float = ALPHA, failure_penalty: float = 1.0) -> None:
        self.alpha = alpha
        self.failure_penalty = failure_penalty  # seconds charged for a failed answer
        self.ewma: dict[str, float] = {}
        self.tie = RoundRobin()

    def observe(self, server: Server, latency: float, ok: bool) -> None:
        sample = latency if ok else max(latency, self.failure_penalty)
        old = self.ewma.get(server.name)
        self.ewma[server.name] = sample if old is None else old + self.alpha * (sample - old)

    def cost(self, s: Server) -> float:
        return self.ewma.get(s.name, 0.0) * (s.active + 1) / (s.w if s.w > 0 else 1e-9)

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        best = min(self.cost(s) for s in candidates)
        return self.tie.choose([s for s in candidates if self.cost(s) == best], request, rng)
