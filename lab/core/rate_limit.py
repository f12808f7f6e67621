"""A per-client request rate limit, as nginx's ``limit_req`` counts it (the defence against an HTTP flood).

nginx keeps, per key (here the client's address), the *excess*: how many
requests above the allowed rate the client has made recently. Each request
first lets the excess drain at ``rate`` per second for the time since the
client's last request, then adds one:

    excess = max(0, excess - rate x elapsed) + 1

A request that would push the excess above ``burst`` is refused (and does
not count); with ``nodelay`` (which halab always uses) every accepted
request passes at once. So a client may send ``rate`` requests a second for
ever, and up to ``burst`` more in a moment, and one that floods gets almost
everything refused, cheaply, before any origin sees it
(``ngx_http_limit_req_module.c``: ``ngx_http_limit_req_lookup``; nginx counts
in thousandths of a request, this counts in floats).

HAProxy spells the same idea with a stick table: ``http-request deny
deny_status 429 if { sc_http_req_rate(0) gt N }``, a sliding count over a
period rather than a drain rate; for a steady flood they refuse the same
share.

The table forgets a client whose excess has drained to zero (nginx expires
idle nodes too), so a lab full of one-shot forged addresses cannot grow it
without bound: at most ``max_clients`` are kept, the stalest dropped first.
"""
from __future__ import annotations

from dataclasses import dataclass, field

EPSILON = 1e-9  # nginx counts whole milliseconds and thousandths; floats need a little slack to agree with it


@dataclass
class RateLimit:
    rate: float  # requests per second a client may keep sending
    burst: int = 0  # requests above the rate a client may send at once (nginx burst=, default 0)
    max_clients: int = 100_000
    clients: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (excess, time of its last accepted request)
    refused: int = 0

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"a rate limit must allow more than 0 requests a second (got {self.rate})")
        if self.burst < 0:
            raise ValueError(f"burst must be 0 or more (got {self.burst})")

    def allow(self, key: str, now: float) -> bool:
        """May this client's request pass now? A refused one leaves the client's count as it was."""
        excess, last = self.clients.get(key, (0.0, now))
        excess = max(0.0, excess - self.rate * max(0.0, now - last)) + 1
        if excess > self.burst + 1 + EPSILON:
            self.refused += 1
            return False
        self.clients.pop(key, None)  # re-inserted last: the dict's order is the staleness order
        self.clients[key] = (excess, now)
        while len(self.clients) > self.max_clients:
            del self.clients[next(iter(self.clients))]
        return True

    def retry_after(self, key: str, now: float) -> int:
        """Whole seconds until this client may send again (the ``Retry-After`` of a 429), at least 1."""
        excess, last = self.clients.get(key, (0.0, now))
        wait = (max(0.0, excess - self.rate * max(0.0, now - last)) + 1 - (self.burst + 1)) / self.rate
        return max(1, int(wait + 0.999))
