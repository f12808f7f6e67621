"""L7 balancer (gateway, reverse proxy): HTTP in, HTTP out to a chosen origin.

For every request from a client it asks the pool (``lab.core.balancing``)
for a server, forwards the request over a kept-alive connection with
``X-Forwarded-For`` and ``Via`` added (RFC 9110 7.6.3: a gateway must add
Via on inbound requests), and relays the answer with ``X-Upstream`` naming
the server, so the client can tell who served or who failed it.

Beside the traffic, one probe loop per server runs the active health check
(HTTP GET or TCP connect) and feeds the results to an HAProxy-style health
counter (``lab.core.health``); a server that goes DOWN leaves the pool until
it rises again. Every routing decision, failure and health change is an
event in the run's log.

Errors follow nginx: 502 when the server refuses or breaks the connection,
504 when it does not answer in time, 503 when no server is UP. What it
shares with the forward proxy (connecting, retrying, queueing, the client
leaving) is ``lab.services.intermediary``.
"""
from __future__ import annotations

import asyncio
import gc
import os
import random
import time
from typing import Any

from lab.core import client_limits
from lab.core.balancing import Pool, Server, make_algorithm
from lab.core.cache import CacheSettings, cache_key
from lab.core.health import READY_PATH, HealthSettings
from lab.core.http1 import render_response
from lab.core.passive import PassiveHealth, PassiveSettings
from lab.core.scenario import BalancerSettings
from lab.core.schema import from_config
from lab.services.cache_layer import CacheLayer
from lab.services.exchange import DONE, Exchange
from lab.services.healthcheck import HealthChecker, Probe, Target
from lab.services.intermediary import Intermediary
from lab.services.proxy import ClientSide
from lab.services.runtime import Context, listen, serve, server_tls, set_syncookies
from lab.services.upstreams import PooledUpstreams


class Balancer(Intermediary):
    def __init__(self, ctx: Context) -> None:
        cfg = ctx.config
        # the same settings the scenario built (lab.core.scenario.BalancerSettings), rebuilt from the JSON config
        self.settings = b = from_config(BalancerSettings, cfg)
        super().__init__(ctx.node, ctx.log, client_limits.from_config(cfg), b.timeout_connect, b.timeout_server, b.retries, b.maxconn)
        self.ctx = ctx
        self.log_requests = b.log_requests
        servers = [Server(s["name"], s["address"], s["port"], s["weight"], s["backup"]) for s in cfg["servers"]]
        algorithm = make_algorithm(b.algorithm, servers, b.hash_key)
        self.pool = Pool(servers, algorithm, random.Random(cfg["seed"]), b.slowstart)
        hc, passive = cfg["health"], cfg["passive"]
        self.passive = PassiveHealth(from_config(PassiveSettings, passive), [s.name for s in servers])
        self.upstreams = PooledUpstreams(self.pool, self.passive, self.log, self.drop_idle)
        self.checker = HealthChecker([Target(s.name, s.address, s.port) for s in servers], from_config(HealthSettings, hc),
                                     from_config(Probe, hc), self.log, self.health_changed)
        self.health = self.checker.counters
        self.last_check = self.checker.last_check
        self.no_server = 0
        caching = from_config(CacheSettings, cfg["cache"])
        # the cache answers what it can before any balancing; None (off) costs one test per request
        self.cache = CacheLayer(self, caching, self.cache_key, b.log_requests) if caching.enabled else None
        ctx.commands.update(stats=lambda req: self.statistics(), set_server=self.set_server)

    # ---- runtime commands ------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "no_server": self.no_server, "bad_requests": self.bad_requests, "retried": self.retried,
            "in_flight": self.in_flight, "queued": len(self.admission.queue), "refused": dict(self.refusals), "idle_closed": self.idle_closed,
            "client_aborts": self.client_aborts,
            "cache": None if self.cache is None else {"results": dict(self.cache.counters.results), "entries": len(self.cache.cache.entries),
                                                      "bytes": self.cache.cache.bytes, "origin_requests": self.cache.counters.origin_requests},
            "servers": {s.name: {"state": self.health[s.name].label(), "active": s.active, "picked": s.picked,
                                 "errors": self.errors[s.name], "weight": s.weight, "drain": s.drain,
                                 "disabled": s.disabled, "ejected": s.ejected, "checks": self.last_check[s.name][0],
                                 "last_check": self.last_check[s.name][1]} for s in self.pool.servers},
        }

    def set_server(self, req: dict[str, Any]) -> dict[str, Any]:
        server = self.pool[req["server"]]
        changes = {k: req[k] for k in ("weight", "drain", "disabled") if k in req}
        for key, value in changes.items():
            setattr(server, key, int(value) if key == "weight" else bool(value))
        self.log.emit("server_changed", server=server.name, **changes)
        return self.statistics()["servers"][server.name]

    # ---- health checks (lab.services.healthcheck runs them) ----------------------------
    def health_changed(self, name: str, up: bool) -> None:
        self.pool.set_up(name, up, time.time())
        if not up:
            self.drop_idle(name)

    def drop_idle(self, name: str) -> None:
        while self.idle[name]:
            self.idle[name].pop().close()

    # ---- proxying (the data path itself is lab.services.proxy; the rest lab.services.intermediary)
    def ready(self) -> list[str]:
        """Servers this balancer can send a request to now: UP, and confirmed so by a probe of its own."""
        return [s.name for s in self.pool.servers if self.checker.ready(s.name) and not s.disabled]

    def answer_ready(self, x: Exchange) -> None:
        """``GET /halab-ready``: 200 when at least one server is ready, else 503 (HAProxy ``monitor-uri``).

        VRRP tracking asks this, so a gateway takes or takes back its VIP only
        when it can serve, not merely when its port accepts connections.
        """
        ready = self.ready()
        status = 200 if ready else 503
        body = f"{'ready' if ready else 'not ready'}: {len(ready)} of {len(self.pool.servers)} servers UP ({', '.join(ready) or 'none'})\n"
        keep = x.keep and not x.client.streaming
        x.state = DONE
        x.client.write(render_response(status, body.encode(), [("Via", f"1.1 {self.name}"), ("Cache-Control", "no-store")], keep))
        x.client.finish(keep)

    def dispatch(self, x: Exchange) -> None:
        """A request from a client (``x.request``: its head as it is to be forwarded; a streamed body follows)."""
        if x.head.target == READY_PATH:
            self.answer_ready(x)
            return
        if self.cache is not None:
            self.cache.handle(x)
        else:
            self.admit_exchange(x)

    @staticmethod
    def cache_key(x: Exchange) -> str:
        """A gateway's cache key: the Host the client named and the target (the effective URI, RFC 9111 2)."""
        return cache_key(x.head.get("Host") or "", x.head.target)

    def attempt(self, x: Exchange) -> None:
        """Pick a server for ``x`` (avoiding those already tried) and send it there."""
        server = self.upstreams.pick(x)
        if server is None:
            self.no_server += 1
            why = "no server is UP" if not x.tried else f"no server left to retry on after {', '.join(x.tried)}"
            self.log.emit("request_failed", id=x.rid, server=None, status=503, error="no_server", detail=why)
            self.answer_error(x, 503, why, [], "no_server")
            return
        if self.log_requests:
            self.log.emit("request_routed", id=x.rid, server=server.name, client=x.client.ip, method=x.head.method,
                          path=x.head.target, attempt=len(x.tried) + 1)
        self.send(x, server)

    def release(self, x: Exchange, ok: bool) -> None:
        self.upstreams.release(x, ok)


async def report_load(balancer: Balancer, every: float = 1.0) -> None:
    """Requests/s and CPU share of this process, once a second: the cost of active/active shows here."""
    loop = asyncio.get_running_loop()
    last_requests, last_cpu, last_t = balancer.requests, sum(os.times()[:2]), loop.time()
    while True:
        await asyncio.sleep(every)
        now, cpu = loop.time(), sum(os.times()[:2])
        balancer.log.emit("balancer_load", rps=round((balancer.requests - last_requests) / (now - last_t), 1),
                          cpu=round(100 * (cpu - last_cpu) / (now - last_t), 1))
        last_requests, last_cpu, last_t = balancer.requests, cpu, now


async def main(ctx: Context) -> None:
    balancer = Balancer(ctx)
    set_syncookies(balancer.settings.syncookies)
    port = balancer.settings.port
    listeners = await listen(lambda: ClientSide(balancer), list(balancer.settings.bind or ()), port)
    if balancer.settings.tls_port:  # HTTPS: TLS ends here (termination), the origins get plain HTTP as before
        listeners += await listen(lambda: ClientSide(balancer), list(balancer.settings.bind or ()), balancer.settings.tls_port,
                                  tls=server_tls(ctx.config))
    servers = balancer.pool.servers
    checker = balancer.checker
    checks = [ctx.spawn(checker.loop(t, delay), f"check {t.name}") for t, delay in zip(checker.targets, checker.first_delays())]
    checks.append(ctx.spawn(report_load(balancer), "report_load"))
    # Everything built so far lives as long as the process: freeze it out of the
    # garbage collector's sight, and collect the young generation ten times less
    # often. A request's few objects die with it (no cycles), so they rarely reach
    # a collection at all; this saves about 1 us per request (lab.services.proxy).
    gc.freeze()
    gc.set_threshold(7000, 10, 10)
    ctx.ready(port=port, servers=[s.name for s in servers], algorithm=balancer.pool.algorithm.name,
              health_rule=balancer.checker.rule.name, bind=list(balancer.settings.bind or ["0.0.0.0"]))
    try:
        await ctx.stopping.wait()
    finally:
        for task in checks:
            task.cancel()
        for listener in listeners:
            listener.close()


if __name__ == "__main__":
    serve(main)
