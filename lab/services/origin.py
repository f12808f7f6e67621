"""Origin server: an HTTP server that says who it is.

Every answer names the server in its body and in ``X-Served-By``, so the
client (and the report) can see which origin did the work. ``/health``
answers 200 ``ok`` for the balancer's probes. ``latency_ms`` delays every
other answer and ``capacity`` limits how many are served at once (the rest
queue), which is how a slow or overloaded server is emulated. ``workers``
limits the *connections* served at once instead, as a process-per-connection
server does: what slow clients (slowloris) use up.

With ``log_requests`` every request it parses is a ``request_parsed``
event (method, target, Host, Via, X-Forwarded-For, X-Request-Id, body
bytes, the names of all headers):
what really reached the origin, which is how a test proves that no request
got here that a gateway never routed (request smuggling).

Config keys: node, port, bind, latency_ms, capacity, workers, log_requests, events, control.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from email.utils import formatdate

from lab.core.http1 import Head, HttpError, error_response, parse_request_head, render_head, render_response, request_framing
from lab.core.proxy_protocol import ProxyHeaderError, decode
from lab.core.scenario import OriginSettings
from lab.core.schema import from_config
from lab.services.httpio import PeerClosed, discard_body, read_head
from lab.services.runtime import Context, listening_socket, serve, until_stopped


async def proxy_header(head: bytes, reader: asyncio.StreamReader) -> tuple[str | None, bytes]:
    """Take a PROXY protocol header off the start of a connection: (the client it names, the HTTP head that follows).

    ``head`` is what ``read_head`` returned: a v1 header is the first line of
    it; a v2 header's signature starts with a blank line, so ``head`` is just
    ``\\r\\n\\r\\n`` and the rest of the binary block is read here. Without
    a header the head is returned as it was.
    """
    try:
        if head == b"\r\n\r\n":
            rest = await reader.readexactly(12)
            data = head + rest + await reader.readexactly(int.from_bytes(rest[10:12], "big"))
            found, _ = decode(data)
            head = await read_head(reader)
        elif head.startswith(b"PROXY "):
            line, _, head = head.partition(b"\r\n")
            found, _ = decode(line + b"\r\n")
        else:
            return None, head
    except (ProxyHeaderError, asyncio.IncompleteReadError) as e:
        raise HttpError(400, f"bad PROXY protocol header: {e}") from None
    return (f"{found[0]}:{found[1]}" if found else None), head


KEEPALIVE_TIMEOUT = 5.0  # seconds an idle kept-alive connection keeps its worker (Apache KeepAliveTimeout default)


class Origin:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.name = ctx.node
        self.settings = s = from_config(OriginSettings, ctx.config)
        self.latency = s.latency_ms / 1000
        capacity = s.capacity
        self.slots = asyncio.Semaphore(capacity) if capacity > 0 else None
        # A process-per-connection server (Apache prefork): a connection holds a worker from its first
        # byte to its close, and the rest wait unread in the kernel's backlog. What slowloris empties.
        self.workers = asyncio.Semaphore(s.workers) if s.workers > 0 else None
        self.busy_workers = 0
        self.served = 0
        self.health_checks = 0
        self.bad_requests = 0
        self.fail_status = 0  # a bad deploy (fault bad_deploy): every request but /health answered with this status
        self.failed = 0
        self.in_flight = 0
        self.started = time.time()
        self.log_requests = s.log_requests
        ctx.commands["stats"] = lambda req: self.statistics()
        ctx.commands["set"] = self.set_command

    def statistics(self) -> dict[str, object]:
        return {"served": self.served, "health_checks": self.health_checks, "bad_requests": self.bad_requests,
                "in_flight": self.in_flight, "busy_workers": self.busy_workers, "latency_ms": self.latency * 1000,
                "fail_status": self.fail_status, "failed": self.failed}

    def set_command(self, req: dict[str, object]) -> dict[str, object]:
        if "latency_ms" in req:
            self.latency = float(req["latency_ms"]) / 1000  # type: ignore[arg-type]
            self.ctx.log.emit("origin_changed", latency_ms=self.latency * 1000)
        if "fail_status" in req:
            status = int(req["fail_status"])  # type: ignore[call-overload]
            if status != 0 and not 500 <= status <= 599:
                raise ValueError(f"fail_status must be 0 (off) or a 5xx status, got {status}")
            self.fail_status = status
            self.ctx.log.emit("origin_changed", latency_ms=self.latency * 1000, fail_status=status)
        return self.statistics()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.workers is None:
            await self.serve(reader, writer)
            return
        async with self.workers:
            self.busy_workers += 1
            try:
                await self.serve(reader, writer)
            finally:
                self.busy_workers -= 1

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = "{}:{}".format(*writer.get_extra_info("peername")[:2])  # who this connection comes from, as the origin sees it
        proxied_for = None
        first = self.settings.proxy_protocol
        served = 0
        try:
            while True:
                try:
                    if served and self.workers is not None:  # an idle kept-alive connection holds a worker: Apache's KeepAliveTimeout
                        try:
                            raw = await asyncio.wait_for(read_head(reader), KEEPALIVE_TIMEOUT)
                        except asyncio.TimeoutError:
                            return
                    else:
                        raw = await read_head(reader)
                    served += 1
                    if first:
                        proxied_for, raw = await proxy_header(raw, reader)
                        first = False
                    head = parse_request_head(raw)
                    framing, length = request_framing(head)
                    size = await discard_body(reader, framing, length)
                except HttpError as e:
                    self.bad_requests += 1
                    if self.log_requests:
                        self.ctx.log.emit("request_unparsed", status=e.status, error=e.message)
                    writer.write(error_response(e.status, e.message, [("X-Served-By", self.name)]))
                    await writer.drain()
                    return
                if self.log_requests:
                    # every Via and X-Forwarded-For line, joined (each hop may add its own line), and the
                    # header names, so a test can prove what never arrived (Proxy-Authorization)
                    self.ctx.log.emit("request_parsed", method=head.method, target=head.target, id=head.get("X-Request-Id"),
                                      via=", ".join(head.get_all("Via")) or None,
                                      forwarded_for=", ".join(head.get_all("X-Forwarded-For")) or None, body=size,
                                      host=head.get("Host"), headers=[k.lower() for k, _ in head.headers], peer=peer,
                                      proxied_for=proxied_for)
                keep = head.keep_alive()
                writer.write(await self.answer(head.method, head.target, keep, head.get("If-None-Match"), self.link_host(head)))
                await writer.drain()
                if not keep:
                    return
        except (PeerClosed, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def link_host(self, head: Head) -> str | None:
        """The host of the page's absolute link ([origins] links_from), or None when pages carry no link."""
        where = self.settings.links_from
        if where == "none":
            return None
        return (head.get("X-Forwarded-Host") if where == "x-forwarded-host" else None) or head.get("Host") or self.name

    async def answer(self, method: str, target: str, keep: bool, if_none_match: str | None = None,
                     link_host: str | None = None) -> bytes:
        headers = [("X-Served-By", self.name), ("Content-Type", "text/plain")]
        if target == "/health":
            self.health_checks += 1
            return render_response(200, b"ok\n", headers, keep)
        if self.fail_status:  # the application is broken; the process and its health endpoint are fine
            self.failed += 1
            return render_response(self.fail_status, b"internal error\n", headers, keep)
        self.in_flight += 1
        try:
            if self.slots is not None:
                async with self.slots:
                    await self._work()
            else:
                await self._work()
        finally:
            self.in_flight -= 1
        self.served += 1
        body = f"served by {self.name}\n".encode()
        if link_host is not None:  # what a template with an absolute URL renders: a script every visitor's browser runs
            body += f'<script src="http://{link_host}/static/app.js"></script>\n'.encode()
        # An entity tag for the path's content: redundant origins serve the same content, so they agree on it
        # (the body's "served by" line is the lab's telltale, not content). A cache's conditional request
        # (If-None-Match) is answered 304 when the copy it holds is still this one.
        etag = f'"{hashlib.sha1(target.split("?", 1)[0].encode()).hexdigest()[:12]}"'
        headers += [("Cache-Control", self.cache_control(target)), ("ETag", etag), ("Date", formatdate(usegmt=True))]
        if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
            return render_head(("HTTP/1.1", "304", "Not Modified"), headers + ([] if keep else [("Connection", "close")]))
        return render_response(200, b"" if method == "HEAD" else body, headers, keep)

    def cache_control(self, target: str) -> str:
        """The Cache-Control for a path: the longest matching prefix of ``cache_paths``, else ``cache_control``."""
        path = target.split("?", 1)[0]
        matches = [prefix for prefix in self.settings.cache_paths if path.startswith(prefix)]
        return self.settings.cache_paths[max(matches, key=len)] if matches else self.settings.cache_control

    async def _work(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)


async def main(ctx: Context) -> None:
    origin = Origin(ctx)
    port = origin.settings.port
    bind = list(origin.settings.bind or ["0.0.0.0"])
    servers = [await asyncio.start_server(origin.handle, sock=listening_socket(a, port), backlog=1024) for a in bind]
    ctx.ready(port=port, bind=bind)
    await until_stopped(ctx, servers)


if __name__ == "__main__":
    serve(main)
