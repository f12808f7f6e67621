"""Where a gateway sends each exchange: a balanced pool of servers (``lab.services.exchange.Upstreams``).

``PooledUpstreams`` is the reverse proxy's answer: the balancing algorithm
(``lab.core.balancing``) picks among the servers that are UP (active
health, ``lab.services.healthcheck``) and not ejected (passive health,
``lab.core.passive``), never one this exchange already tried. It keeps
each server's in-flight count for least-connections, its response times
for least-time, and feeds every outcome to passive health.

A forward proxy answers the same question differently (the host the
request names); it implements the same two methods.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator, Mapping

from lab.core.balancing import Pool, RequestInfo, Server
from lab.core.http1 import Head
from lab.core.passive import PassiveHealth
from lab.events import EventLog
from lab.services.exchange import Exchange


class HeaderView(Mapping[str, str]):
    """A request's headers for the hashing algorithms, without copying them per request."""

    def __init__(self, head: Head) -> None:
        self.head = head

    def __getitem__(self, name: str) -> str:
        value = self.head.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.head.index)

    def __len__(self) -> int:
        return len(self.head.index)


class PooledUpstreams:
    def __init__(self, pool: Pool, passive: PassiveHealth, log: EventLog, drop_idle: Callable[[str], None]) -> None:
        self.pool = pool
        self.passive = passive
        self.passive_on = passive.settings.enabled  # settings are frozen: read once, not per request
        self.uses_request = pool.algorithm.uses_request
        self.log = log
        self.drop_idle = drop_idle

    def pick(self, x: Exchange) -> Server | None:
        now = time.time() if self.passive_on or self.pool.slowstart else 0.0  # the clock only when something reads it
        if self.passive_on:
            for name in self.passive.expire(now):
                self.pool[name].ejected = False
                self.log.emit("server_returned", server=name)
        info = RequestInfo(x.client.ip, x.head.method, x.head.target, HeaderView(x.head)) if self.uses_request else None
        server = self.pool.pick(info, x.tried, now)
        if server is not None:
            server.active += 1
        return server

    def release(self, x: Exchange, ok: bool) -> None:
        server = x.server
        assert isinstance(server, Server)
        server.active -= 1
        self.pool.finished(server, time.monotonic() - x.started, ok)
        if self.passive_on:
            self._passive(server, ok)

    def _passive(self, server: Server, ok: bool) -> None:
        now = time.time()
        if ok:
            self.passive.success(server.name, now)
            return
        ejection = self.passive.failure(server.name, now)
        if ejection is not None:
            server.ejected = True
            self.drop_idle(server.name)
            self.log.emit("server_ejected", server=server.name, until=ejection.until, rule=ejection.rule)
