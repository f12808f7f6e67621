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
import os
import random
import time
from collections import deque
from typing import Any, Iterator, Mapping

from lab.core.balancing import Pool, RequestInfo, Server, make_algorithm
from lab.core.health import FAIL, PASS, HealthCounter, HealthSettings
from lab.core.passive import PassiveHealth, PassiveSettings
from lab.core.http1 import (
    IDEMPOTENT, HttpError, Head, error_response, forward_headers, parse_request_head,
    parse_response_head, render_head, request_framing, response_framing,
)
from lab.services.httpio import Conn, PeerClosed, read_body, read_head, relay_body, take_idle, within
from lab.services.probes import http_probe, icmp_probe, tcp_probe
from lab.services.runtime import Context, serve



SMALL_BODY = 64 * 1024


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


class UpstreamError(Exception):
    def __init__(self, status: int, kind: str, message: str, sent: bool) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.sent = sent  # the request reached the server: not safe to replay a POST


class Balancer:
    def __init__(self, ctx: Context) -> None:
        cfg = ctx.config
        self.ctx = ctx
        self.log = ctx.log
        self.name = ctx.node
        self.timeout_connect = float(cfg.get("timeout_connect", 1.0))
        self.timeout_server = float(cfg.get("timeout_server", 2.0))
        self.log_requests = bool(cfg.get("log_requests", True))
        servers = [Server(s["name"], s["address"], int(s.get("port", 80)), int(s.get("weight", 1)), bool(s.get("backup", False))) for s in cfg["servers"]]
        algorithm = make_algorithm(cfg.get("algorithm", "roundrobin"), servers, cfg.get("hash_key", "uri"))
        self.pool = Pool(servers, algorithm, random.Random(cfg.get("seed", 1)), float(cfg.get("slowstart", 0.0)))
        self.retries = int(cfg.get("retries", 0))
        self.passive = PassiveHealth(PassiveSettings(**cfg.get("passive", {})), [s.name for s in servers])
        hc = cfg.get("health", {})
        self.check_kind = hc.get("kind", "http")
        self.check_path = hc.get("path", "/health")
        self.expect_status = int(hc.get("expect_status") or 0)
        self.expect_body = hc.get("expect_body") or ""
        settings = HealthSettings(int(hc.get("rise", 2)), int(hc.get("fall", 3)), float(hc.get("inter", 2.0)),
                                  hc.get("fastinter"), hc.get("downinter"), hc.get("timeout"))
        self.health = {s.name: HealthCounter(s.name, settings) for s in servers}
        self.idle: dict[str, deque[Conn]] = {s.name: deque() for s in servers}
        self.errors = {s.name: 0 for s in servers}
        self.last_check: dict[str, tuple[int, str]] = {s.name: (0, "not probed yet") for s in servers}  # (count, result)
        self.retried = 0
        self.requests = 0
        self.no_server = 0
        self.bad_requests = 0
        ctx.commands.update(stats=lambda req: self.statistics(), set_server=self.set_server)

    # ---- runtime commands ------------------------------------------------------------
    def statistics(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "no_server": self.no_server, "bad_requests": self.bad_requests, "retried": self.retried,
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

    # ---- health checks ---------------------------------------------------------------
    async def probe(self, server: Server) -> tuple[bool, str]:
        timeout = self.health[server.name].settings.check_timeout
        try:
            return await within(timeout, self._probe(server))
        except asyncio.TimeoutError:
            return False, f"no answer within {timeout:g} s"
        except ConnectionRefusedError:
            return False, "connection refused"
        except (OSError, HttpError, asyncio.IncompleteReadError, PeerClosed) as e:
            return False, f"{type(e).__name__}: {e}"

    async def _probe(self, server: Server) -> tuple[bool, str]:
        if self.check_kind == "tcp":
            return await tcp_probe(server.address, server.port)
        if self.check_kind == "icmp":
            return await icmp_probe(server.address)
        return await http_probe(server.address, server.port, self.check_path, self.expect_status, self.expect_body)

    async def check_loop(self, server: Server, first_delay: float) -> None:
        counter = self.health[server.name]
        loop = asyncio.get_running_loop()
        await asyncio.sleep(first_delay)
        while True:
            started = loop.time()
            ok, detail = await self.probe(server)
            self.last_check[server.name] = (self.last_check[server.name][0] + 1, f"{'pass' if ok else 'fail'}: {detail}")
            before = counter.label()
            transition = counter.observe(PASS if ok else FAIL, time.time(), detail)
            if counter.label() != before:  # steady UP 3/3 or DOWN 0/2 probes are not news
                self.log.emit("health_checked", server=server.name, result=PASS if ok else FAIL, detail=detail,
                              label=counter.label(), took=round(loop.time() - started, 4))
            if transition is not None:
                self.pool.set_up(server.name, counter.up, time.time())
                self.log.emit("health_changed", server=server.name, before=transition.before, after=transition.after,
                              reason=transition.reason, label=counter.label())
                if not server.up:
                    self.drop_idle(server.name)
            await asyncio.sleep(counter.next_interval())  # counted from the end of the probe, like HAProxy

    def drop_idle(self, name: str) -> None:
        while self.idle[name]:
            self.idle[name].pop()[1].close()

    # ---- proxying --------------------------------------------------------------------
    async def connect(self, server: Server) -> tuple[Conn, bool]:
        conn = take_idle(self.idle[server.name])
        if conn is not None:
            return conn, True
        try:
            conn = await within(self.timeout_connect, asyncio.open_connection(server.address, server.port))
        except asyncio.TimeoutError:
            raise UpstreamError(504, "connect_timeout", f"no TCP connection to {server.name} within {self.timeout_connect:g} s", False) from None
        except OSError as e:
            raise UpstreamError(502, "connect_refused" if isinstance(e, ConnectionRefusedError) else "connect_error",
                                f"cannot connect to {server.name}: {e.strerror or e}", False) from None
        return conn, False

    async def exchange(self, server: Server, head: bytes, body: bytes, method: str,
                       client: asyncio.StreamWriter, retries: int) -> int:
        """Send one request to ``server`` and relay its answer; return the status."""
        for attempt in (1, 2):
            (reader, writer), reused = await self.connect(server)
            try:
                writer.write(head + body)
                raw = await within(self.timeout_server, read_head(reader))
                break
            except (PeerClosed, ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as e:
                writer.close()
                # A kept-alive connection the server had closed: the request never
                # reached it, so trying once on a fresh connection is safe (HAProxy http-reuse).
                if reused and attempt == 1 and method in IDEMPOTENT:
                    continue
                raise UpstreamError(502, "reset", f"{server.name} closed the connection: {type(e).__name__}", True) from None
            except asyncio.TimeoutError:
                writer.close()
                raise UpstreamError(504, "timeout", f"{server.name} sent no answer within {self.timeout_server:g} s", True) from None
        try:
            rhead = parse_response_head(raw)
            framing, length = response_framing(rhead, method)
        except HttpError as e:
            writer.close()
            raise UpstreamError(502, "bad_response", f"{server.name}: {e.message}", True) from None
        headers = forward_headers(rhead) + [("Via", f"1.1 {self.name}"), ("X-Upstream", server.name)]
        if retries:
            headers.append(("X-Retries", str(retries)))  # so the client's records show who was saved by a retry
        if framing == "chunked":  # hop-by-hop, so dropped above; we relay the chunks as they are
            headers.append(("Transfer-Encoding", "chunked"))
        out = render_head(rhead.start, headers)
        try:
            if framing == "length" and length <= SMALL_BODY:
                # Most answers are small: one read and one write instead of a copy loop.
                client.write(out + await within(self.timeout_server, reader.readexactly(length)))
            else:
                client.write(out)
                await within(self.timeout_server, relay_body(reader, client, framing, length))
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            raise  # nothing sensible can follow a half-sent answer: drop the client connection
        if rhead.keep_alive() and framing != "close":
            self.idle[server.name].append((reader, writer))
        else:
            writer.close()
        return rhead.status

    def forwarded_head(self, head: Head, client_ip: str) -> bytes:
        headers = forward_headers(head)
        xff = head.get("X-Forwarded-For")
        headers = [(k, v) for k, v in headers if k.lower() != "x-forwarded-for"]
        headers += [("X-Forwarded-For", f"{xff}, {client_ip}" if xff else client_ip), ("Via", f"1.1 {self.name}"),
                    ("Connection", "keep-alive")]
        return render_head((head.method, head.target, "HTTP/1.1"), headers)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        client_ip = str(peer[0])
        try:
            while True:
                try:
                    head = parse_request_head(await read_head(reader))
                    framing, length = request_framing(head)
                    if framing == "chunked":
                        raise HttpError(411, "chunked request bodies are not supported here; send Content-Length")
                    body = await read_body(reader, framing, length)
                except HttpError as e:
                    self.bad_requests += 1
                    self.log.emit("request_rejected", client=client_ip, status=e.status, error=e.message)
                    writer.write(error_response(e.status, e.message, [("Via", f"1.1 {self.name}")]))
                    await writer.drain()
                    return
                if not await self.route(head, body, client_ip, writer):
                    return
        except (PeerClosed, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()

    async def route(self, head: Head, body: bytes, client_ip: str, writer: asyncio.StreamWriter) -> bool:
        """Forward one request, retrying elsewhere when that is safe; return whether the client connection may go on."""
        self.requests += 1
        rid = head.get("X-Request-Id") or f"{self.name}-{self.requests}"
        keep = head.keep_alive()
        info = RequestInfo(client_ip, head.method, head.target, HeaderView(head))
        forwarded = self.forwarded_head(head, client_ip)
        tried: list[str] = []
        while True:
            now = time.time()
            for name in self.passive.expire(now):
                self.pool[name].ejected = False
                self.log.emit("server_returned", server=name)
            server = self.pool.pick(info, exclude=tried, now=now)
            if server is None:
                self.no_server += 1
                why = "no server is UP" if not tried else f"no server left to retry on after {', '.join(tried)}"
                self.log.emit("request_failed", id=rid, server=None, status=503, error="no_server", detail=why)
                writer.write(error_response(503, why, [("Via", f"1.1 {self.name}")], keep))
                break
            if self.log_requests:
                self.log.emit("request_routed", id=rid, server=server.name, client=client_ip, method=head.method,
                              path=head.target, attempt=len(tried) + 1)
            server.active += 1
            started = time.monotonic()
            try:
                status = await self.exchange(server, forwarded, body, head.method, writer, len(tried))
                self.pool.finished(server, time.monotonic() - started, status < 500)
                self._passive(server, status < 500)
                break
            except UpstreamError as e:
                self.errors[server.name] += 1
                self.pool.finished(server, time.monotonic() - started, False)
                self._passive(server, False)
                tried.append(server.name)
                # nginx proxy_next_upstream: a request that may have reached the server is
                # replayed only if it is idempotent; one that never left is always safe to move.
                if len(tried) <= self.retries and (not e.sent or head.method in IDEMPOTENT):
                    self.retried += 1
                    self.log.emit("request_retried", id=rid, server=server.name, error=e.kind, detail=e.message)
                    continue
                self.log.emit("request_failed", id=rid, server=server.name, status=e.status, error=e.kind, detail=e.message)
                writer.write(error_response(e.status, e.message, [("Via", f"1.1 {self.name}"), ("X-Upstream", server.name)], keep))
                break
            finally:
                server.active -= 1
        await writer.drain()
        return keep

    def _passive(self, server: Server, ok: bool) -> None:
        if not self.passive.settings.enabled:
            return
        now = time.time()
        if ok:
            self.passive.success(server.name, now)
            return
        ejection = self.passive.failure(server.name, now)
        if ejection is not None:
            server.ejected = True
            self.drop_idle(server.name)
            self.log.emit("server_ejected", server=server.name, until=ejection.until, rule=ejection.rule)


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
    port = int(ctx.config.get("port", 80))
    server = await asyncio.start_server(balancer.handle, host="0.0.0.0", port=port, backlog=4096)
    servers = balancer.pool.servers
    inter = balancer.health[servers[0].name].settings.inter if servers else 1.0
    checks = [asyncio.create_task(balancer.check_loop(s, i * inter / max(1, len(servers)))) for i, s in enumerate(servers)]
    checks.append(asyncio.create_task(report_load(balancer)))
    ctx.ready(port=port, servers=[s.name for s in servers], algorithm=balancer.pool.algorithm.name)
    try:
        async with server:
            await ctx.stopping.wait()
    finally:
        for task in checks:
            task.cancel()


if __name__ == "__main__":
    serve(main)
