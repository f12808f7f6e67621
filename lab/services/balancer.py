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
504 when it does not answer in time, 503 when no server is UP.
"""
from __future__ import annotations

import asyncio
import gc
import os
import random
import time
from collections import defaultdict
from typing import Any, Callable

from lab.core import client_limits
from lab.core.balancing import Pool, Server, make_algorithm
from lab.core.dispatch import Admission, may_retry
from lab.core.health import READY_PATH, HealthSettings
from lab.core.http1 import HttpError, error_response, render_response
from lab.core.passive import PassiveHealth, PassiveSettings
from lab.core.scenario import BalancerSettings
from lab.core.schema import from_config
from lab.services.exchange import CONNECTING, DONE, QUEUED, Exchange, Observer, UpstreamError
from lab.services.healthcheck import HealthChecker, Probe, Target
from lab.services.httpio import within
from lab.services.proxy import ClientSide
from lab.services.runtime import Context, listen, serve
from lab.services.upstream_side import UpstreamSide, idle_connection
from lab.services.upstreams import PooledUpstreams


class Balancer:
    def __init__(self, ctx: Context) -> None:
        cfg = ctx.config
        self.ctx = ctx
        self.log = ctx.log
        self.name = ctx.node
        # the same settings the scenario built (lab.core.scenario.BalancerSettings), rebuilt from the JSON config
        self.settings = b = from_config(BalancerSettings, cfg)
        self.timeout_connect = b.timeout_connect
        self.timeout_server = b.timeout_server
        self.log_requests = b.log_requests
        servers = [Server(s["name"], s["address"], s["port"], s["weight"], s["backup"]) for s in cfg["servers"]]
        algorithm = make_algorithm(b.algorithm, servers, b.hash_key)
        self.pool = Pool(servers, algorithm, random.Random(cfg["seed"]), b.slowstart)
        self.retries = b.retries
        hc, passive = cfg["health"], cfg["passive"]
        self.passive = PassiveHealth(from_config(PassiveSettings, passive), [s.name for s in servers])
        self.upstreams = PooledUpstreams(self.pool, self.passive, self.log, self.drop_idle)
        self.checker = HealthChecker([Target(s.name, s.address, s.port) for s in servers], from_config(HealthSettings, hc),
                                     from_config(Probe, hc), self.log, self.health_changed)
        self.health = self.checker.counters
        self.last_check = self.checker.last_check
        self.idle: dict[str, list[UpstreamSide]] = defaultdict(list)  # by server name (a forward proxy's are any host)
        # Opt-in: a function giving each exchange an observer of its answer (a cache); None costs nothing.
        self.observe: Callable[[Exchange], Observer | None] | None = None
        self.errors: dict[str, int] = defaultdict(int)  # failed attempts by server name
        self.retried = 0
        self.requests = 0
        self.admission: Admission[Exchange] = Admission(b.maxconn)  # HAProxy maxconn (0: no limit)
        self.no_server = 0
        self.bad_requests = 0
        self.limits = client_limits.from_config(cfg)
        self.refusals: dict[str, int] = {}  # kind -> requests refused (malformed, smuggling, head_timeout, ...)
        self.idle_closed = 0  # quiet closes of connections that asked nothing within their timeout
        self.client_aborts = 0
        ctx.commands.update(stats=lambda req: self.statistics(), set_server=self.set_server)

    # ---- runtime commands ------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "no_server": self.no_server, "bad_requests": self.bad_requests, "retried": self.retried,
            "in_flight": self.in_flight, "queued": len(self.admission.queue), "refused": dict(self.refusals), "idle_closed": self.idle_closed,
            "client_aborts": self.client_aborts,
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

    # ---- proxying (the data path itself is lab.services.proxy) ------------------------
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
        self.requests += 1
        x.number = self.requests
        if self.observe is not None:
            x.observer = self.observe(x)
        if self.admission.arrive(x):
            self.attempt(x)
        else:
            x.state = QUEUED  # until a request in flight finishes

    def done_with(self, x: Exchange) -> None:
        """A request has its answer (or its error): let the next queued one through, unless its client left."""
        x.state = DONE
        nxt = self.admission.leave(lambda queued: not queued.client.closed)
        if nxt is not None:
            self.attempt(nxt)

    @property
    def in_flight(self) -> int:
        return self.admission.in_flight

    def attempt(self, x: Exchange) -> None:
        """Pick a server for ``x`` (avoiding those already tried) and send it there."""
        server = self.upstreams.pick(x)
        if server is None:
            self.no_server += 1
            why = "no server is UP" if not x.tried else f"no server left to retry on after {', '.join(x.tried)}"
            self.log.emit("request_failed", id=x.rid, server=None, status=503, error="no_server", detail=why)
            x.keep = x.keep and not x.client.streaming
            x.client.write(error_response(503, why, [("Via", f"1.1 {self.name}")], x.keep))
            self.done_with(x)
            x.client.finish(x.keep)
            return
        if self.log_requests:
            self.log.emit("request_routed", id=x.rid, server=server.name, client=x.client.ip, method=x.head.method,
                          path=x.head.target, attempt=len(x.tried) + 1)
        x.server = server
        x.started = time.monotonic()
        conn = idle_connection(self.idle[server.name])
        if conn is not None:
            conn.send(x, reused=True)
        else:
            self.connect(x, server)

    def connect(self, x: Exchange, server: Server) -> None:
        x.state = CONNECTING
        asyncio.get_running_loop().create_task(self._connect(x, server))

    async def _connect(self, x: Exchange, server: Server) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await within(self.timeout_connect, loop.create_connection(lambda: UpstreamSide(self, server), server.address, server.port))
        except asyncio.TimeoutError:
            self.upstream_failed(x, UpstreamError(504, "connect_timeout", f"no TCP connection to {server.name} within {self.timeout_connect:g} s", False))
            return
        except OSError as e:
            kind = "connect_refused" if isinstance(e, ConnectionRefusedError) else "connect_error"
            self.upstream_failed(x, UpstreamError(502, kind, f"cannot connect to {server.name}: {e.strerror or e}", False))
            return
        if x.client.closed:  # the client gave up meanwhile
            conn.close()
            x.conn = None
            self.release(x, ok=True)
            self.done_with(x)
            return
        conn.send(x, reused=False)

    def refused(self, client_ip: str, e: HttpError) -> None:
        """A request refused at the door (malformed, too large, too slow): counted by kind, one event each."""
        self.bad_requests += 1
        self.refusals[e.kind] = self.refusals.get(e.kind, 0) + 1
        self.log.emit("request_rejected", client=client_ip, status=e.status, reason=e.kind, error=e.message)

    def client_gave_up(self, x: Exchange, why: str) -> None:
        """The client left (or was cut off) in the middle of its request's body: free the server it was going to."""
        conn = x.conn
        if conn is None or conn.x is not x or x.server is None:
            return  # not at a server (queued or still connecting): that path notices the closed client itself
        self.client_aborts += 1
        conn.x = None
        conn.close()
        self.release(x, ok=True)  # not the server's fault: neither its health nor its error count suffer
        self.log.emit("request_aborted", id=x.rid, server=x.server.name, reason=why)
        self.done_with(x)

    def release(self, x: Exchange, ok: bool) -> None:
        self.upstreams.release(x, ok)

    def finished(self, x: Exchange, status: int) -> None:
        self.release(x, status < 500)
        self.done_with(x)
        x.client.finish(x.keep)

    def aborted(self, x: Exchange) -> None:
        """The answer broke off halfway (headers already out): count it, drop the client."""
        assert x.server is not None
        self.errors[x.server.name] += 1
        self.release(x, ok=False)
        self.done_with(x)

    def upstream_failed(self, x: Exchange, e: UpstreamError) -> None:
        server = x.server
        assert server is not None
        self.errors[server.name] += 1
        self.release(x, ok=False)
        x.tried.append(server.name)
        if may_retry(len(x.tried), self.retries, x.replayable, e.sent, x.head.method):
            self.retried += 1
            self.log.emit("request_retried", id=x.rid, server=server.name, error=e.kind, detail=e.message)
            x.fresh_retry = False
            self.attempt(x)
            return
        self.log.emit("request_failed", id=x.rid, server=server.name, status=e.status, error=e.kind, detail=e.message)
        x.keep = x.keep and not x.client.streaming
        x.client.write(error_response(e.status, e.message, [("Via", f"1.1 {self.name}"), ("X-Upstream", server.name)], x.keep))
        self.done_with(x)
        x.client.finish(x.keep)


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
    port = balancer.settings.port
    listeners = await listen(lambda: ClientSide(balancer), list(balancer.settings.bind or ()), port)
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
    ctx.ready(port=port, servers=[s.name for s in servers], algorithm=balancer.pool.algorithm.name, bind=list(balancer.settings.bind or ["0.0.0.0"]))
    try:
        await ctx.stopping.wait()
    finally:
        for task in checks:
            task.cancel()
        for listener in listeners:
            listener.close()


if __name__ == "__main__":
    serve(main)
