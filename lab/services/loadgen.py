"""Load generator and availability probe: open-loop HTTP at a fixed rate.

"Open loop" means request *i* is due at ``start + i / rate`` whether or not
earlier ones have answered. A closed-loop client (send the next when the
last one finishes) slows down exactly when the service does, so it sends
few requests during an outage and hides it; an open-loop client keeps
asking, so every second of an outage shows up as failed requests.

Latency is measured from the moment a request was *due*, not from when it
was actually written, so a stalled client cannot make a stalled server look
fast (the "coordinated omission" that wrk2 corrects for).

Every request becomes one ``request_finished`` event: when it was due,
latency, status or error kind, and which origin served it (``X-Served-By``)
or which server the balancer blamed (``X-Upstream``).

A client given proxies (``proxies``, in order, ``DIRECT`` for none) sends
each request in absolute form to the first one it can reach, and falls over
to the next when one cannot be reached, as a browser with a PAC file does;
``proxy`` in each event says which carried it.

Config keys: node, target, port, rate, duration, start_at, timeout, path,
max_in_flight, proxies, proxy_retry, events, control.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import Any

from lab.core.http1 import HttpError, parse_response_head, response_framing
from lab.core.scenario import LoadSettings
from lab.core.schema import from_config
from lab.services.httpio import Conn, PeerClosed, close_stream, read_body, read_head, stream_open, take_idle, within
from lab.services.runtime import Context, serve


class RequestFailed(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.proxy: str | None = None  # the proxy it was last tried through


DIRECT = "DIRECT"  # a PAC file's word for "no proxy"


class Route:
    """A way to the target: a proxy (name, address, port) or DIRECT, with its kept-alive connections."""

    def __init__(self, name: str, address: str = "", port: int = 0) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.idle: deque[Conn] = deque()
        self.bad_until = 0.0  # a proxy that could not be reached is skipped until then


class LoadGenerator:
    def __init__(self, ctx: Context) -> None:
        cfg = ctx.config
        self.ctx = ctx
        self.node = ctx.node
        load = from_config(LoadSettings, cfg)  # the scenario's [load], rebuilt
        self.target = cfg["target"]  # where plan_load aimed this client, and the rest of its run
        self.port = cfg["port"]
        self.duration = cfg["duration"]
        self.start_at = cfg["start_at"]
        self.rng = random.Random(str(cfg["seed"]))  # replayable key sequence
        self.rate = load.rate
        self.timeout = load.timeout
        self.path = load.path
        self.keys = load.keys
        self.max_in_flight = load.max_in_flight
        self.keepalive = load.keepalive  # False: one TCP connection per request
        self.closing = "" if load.keepalive else "Connection: close\r\n"
        # A client may be given proxies, in order, as a PAC file gives them ("PROXY fp1; PROXY fp2; DIRECT"):
        # each request goes through the first that is not marked bad; one that cannot be reached is marked
        # bad for proxy_retry seconds and the next is tried at once (browsers do the same, for minutes).
        self.routes = [Route(**r) for r in cfg["proxies"] or [{"name": DIRECT}]]
        self.proxy_retry = load.proxy_retry
        authority = self.target if self.port == 80 else f"{self.target}:{self.port}"
        self.url_prefix = f"http://{authority}"
        self.in_flight = 0
        self.sent = self.ok = self.failed = 0
        ctx.commands["stats"] = lambda req: self.statistics()

    def statistics(self) -> dict[str, Any]:
        return {"sent": self.sent, "ok": self.ok, "failed": self.failed, "in_flight": self.in_flight, "rate": self.rate}

    def route_order(self) -> list["Route"]:
        """The routes to try for the next request: the good ones in order, then the bad ones (better than nothing)."""
        now = time.monotonic()
        good = [r for r in self.routes if r.bad_until <= now]
        return good + [r for r in self.routes if r.bad_until > now]

    async def connection(self, route: "Route") -> tuple[Conn, bool]:
        conn = take_idle(route.idle, stream_open, close_stream)
        if conn is not None:
            return conn, True
        host, port = (self.target, self.port) if route.name == DIRECT else (route.address, route.port)
        try:
            if route.name == DIRECT:
                return await asyncio.open_connection(host, port), False
            # a proxy that does not answer is passed over quickly, not after the whole request timeout
            return await within(min(1.0, self.timeout / 3), asyncio.open_connection(host, port)), False
        except asyncio.TimeoutError:
            raise RequestFailed("connect_timeout", f"no connection to proxy {route.name} ({host}:{port})") from None
        except ConnectionRefusedError:
            raise RequestFailed("connect_refused", f"{host}:{port} refused the connection") from None
        except OSError as e:
            raise RequestFailed("connect_error", f"cannot connect to {host}: {e.strerror or e}") from None

    async def routed(self, rid: str, path: str) -> tuple[Any, ...]:
        """One request over the first route that connects; a proxy that cannot be reached is skipped (and marked bad)."""
        order = self.route_order()
        for i, route in enumerate(order):
            try:
                return (*await self.exchange(rid, path, route), None if route.name == DIRECT else route.name)
            except RequestFailed as e:
                # A proxy that refuses, does not answer, or resets before answering is passed over (GET is
                # idempotent, so sending it again through the next proxy is safe; browsers fall over on the same errors)
                if route.name == DIRECT or not (e.kind.startswith("connect") or e.kind == "reset") or i == len(order) - 1:
                    e.proxy = None if route.name == DIRECT else route.name
                    raise
                route.bad_until = time.monotonic() + self.proxy_retry
                self.ctx.log.emit("proxy_failover", proxy=route.name, next=order[i + 1].name, error=e.kind)
        raise AssertionError("unreachable")

    async def exchange(self, rid: str, path: str, route: "Route") -> tuple[int, str | None, str | None, str | None, int, str | None, bool]:
        # through a proxy the request names the whole URL (absolute form, RFC 9112 3.2.2)
        target = path if route.name == DIRECT else self.url_prefix + path
        request = (f"GET {target} HTTP/1.1\r\nHost: {self.target}\r\nUser-Agent: halab-loadgen\r\n"
                   f"X-Request-Id: {rid}\r\n{self.closing}\r\n").encode()
        for attempt in (1, 2):
            (reader, writer), reused = await self.connection(route)
            try:
                writer.write(request)
                head = parse_response_head(await read_head(reader))
                framing, length = response_framing(head, "GET")
                body = await read_body(reader, framing, length)
            except (PeerClosed, ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as e:
                writer.close()
                if reused and attempt == 1:
                    # The kept-alive connection is gone: the server closed it, or (after a VIP
                    # failover) the new owner of the address knows nothing of it and reset it.
                    # Like any HTTP client, open a fresh one; say so, it is part of the story.
                    self.ctx.log.emit("connection_lost", id=rid, error=type(e).__name__)
                    continue
                raise RequestFailed("reset", f"connection closed before a full answer: {type(e).__name__}") from None
            except HttpError as e:
                writer.close()
                raise RequestFailed("bad_response", e.message) from None
            except BaseException:
                writer.close()
                raise
            if self.keepalive and head.keep_alive() and framing != "close":
                route.idle.append((reader, writer))
            else:
                writer.close()
            # An error page says why (the balancer's "cannot connect to o2: ..."): keep its first line.
            reason = body.decode("utf-8", "replace").split("\n", 1)[0][:160] if head.status >= 400 else None
            # Via names the gateway that answered ("1.1 gw2"): the report judges each balancer by its own view.
            # Through a proxy, the proxy's hop comes last ("1.1 gw1, 1.1 fp1 (halab)"): the gateway is the one before.
            hops = [h.split() for h in (head.get("Via") or "").split(",") if len(h.split()) > 1]
            if route.name != DIRECT and hops:
                hops.pop()
            gateway = hops[-1][1] if hops else None
            return head.status, head.get("X-Served-By"), head.get("X-Upstream"), reason, int(head.get("X-Retries") or 0), gateway, attempt == 2
        raise AssertionError("unreachable")

    async def one(self, index: int, due: float, path: str) -> None:
        rid = f"{self.node}-{index}"
        started = time.time()
        status = served_by = upstream = gateway = None
        error = detail = None
        retries = 0
        resent = False
        proxy = None
        try:
            status, served_by, upstream, detail, retries, gateway, resent, proxy = await within(
                max(0.001, due + self.timeout - time.time()), self.routed(rid, path))
        except asyncio.TimeoutError:
            error, detail = "timeout", f"no answer within {self.timeout:g} s"
        except RequestFailed as e:
            error, detail, proxy = e.kind, str(e), e.proxy
        except OSError as e:
            error, detail = "connect_error", str(e)
        finally:
            self.in_flight -= 1
        done = time.time()
        ok = status is not None and 200 <= status < 400
        if status is not None and not ok:
            error = f"http_{status}"
        self.ok += ok
        self.failed += not ok
        self.ctx.log.emit("request_finished", t=due, id=rid, latency=round(done - due, 6), service_time=round(done - started, 6),
                          status=status, ok=ok, error=error, detail=detail, served_by=served_by, upstream=upstream,
                          retries=retries, path=path, gateway=gateway, resent=resent, proxy=proxy)

    async def run(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        total = int(self.duration * self.rate)
        proxies = [r.name for r in self.routes if r.name != DIRECT] or None
        self.ctx.log.emit("load_started", t=self.start_at, rate=self.rate, duration=self.duration, target=self.target, requests=total,
                          proxies=proxies)
        for index in range(total):
            due = self.start_at + index / self.rate
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.sent += 1
            if self.in_flight >= self.max_in_flight:
                self.failed += 1
                self.ctx.log.emit("request_finished", t=due, id=f"{self.node}-{index}", latency=0.0, status=None, ok=False,
                                  error="client_saturated", detail=f"{self.max_in_flight} requests already in flight")
                continue
            self.in_flight += 1
            path = self.path.replace("{key}", str(self.rng.randrange(self.keys))) if "{key}" in self.path else self.path
            task = asyncio.create_task(self.one(index, due, path))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout + 1)
        self.ctx.log.emit("load_finished", sent=self.sent, ok=self.ok, failed=self.failed)
        for route in self.routes:
            for _, writer in route.idle:
                writer.close()


async def main(ctx: Context) -> None:
    gen = LoadGenerator(ctx)
    ctx.ready(target=gen.target, rate=gen.rate)
    await gen.run()


if __name__ == "__main__":
    serve(main)
