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
