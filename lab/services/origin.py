"""Origin server: an HTTP server that says who it is.

Every answer names the server in its body and in ``X-Served-By``, so the
client (and the report) can see which origin did the work. ``/health``
answers 200 ``ok`` for the balancer's probes. ``latency_ms`` delays every
other answer and ``capacity`` limits how many are served at once (the rest
queue), which is how a slow or overloaded server is emulated.

Config keys: node, port, latency_ms, capacity, events, control.
"""
from __future__ import annotations

import asyncio
import time

from lab.core.http1 import HttpError, error_response, parse_request_head, render_response, request_framing
from lab.services.httpio import PeerClosed, read_body, read_head
from lab.services.runtime import Context, serve


class Origin:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.name = ctx.node
        self.latency = float(ctx.config.get("latency_ms", 0)) / 1000
        capacity = int(ctx.config.get("capacity", 0))
        self.slots = asyncio.Semaphore(capacity) if capacity > 0 else None
        self.served = 0
        self.health_checks = 0
        self.bad_requests = 0
        self.in_flight = 0
        self.started = time.time()
        ctx.commands["stats"] = lambda req: self.statistics()
        ctx.commands["set"] = self.set_command

    def statistics(self) -> dict[str, object]:
        return {"served": self.served, "health_checks": self.health_checks, "bad_requests": self.bad_requests,
                "in_flight": self.in_flight, "latency_ms": self.latency * 1000}

    def set_command(self, req: dict[str, object]) -> dict[str, object]:
        if "latency_ms" in req:
            self.latency = float(req["latency_ms"]) / 1000  # type: ignore[arg-type]
            self.ctx.log.emit("origin_changed", latency_ms=self.latency * 1000)
        return self.statistics()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = parse_request_head(await read_head(reader))
                    framing, length = request_framing(head)
                    await read_body(reader, framing, length)
                except HttpError as e:
                    self.bad_requests += 1
                    writer.write(error_response(e.status, e.message, [("X-Served-By", self.name)]))
                    await writer.drain()
                    return
                keep = head.keep_alive()
                writer.write(await self.answer(head.method, head.target, keep))
                await writer.drain()
                if not keep:
                    return
        except (PeerClosed, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def answer(self, method: str, target: str, keep: bool) -> bytes:
        headers = [("X-Served-By", self.name), ("Content-Type", "text/plain")]
        if target == "/health":
            self.health_checks += 1
            return render_response(200, b"ok\n", headers, keep)
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
        return render_response(200, b"" if method == "HEAD" else body, headers + [("Cache-Control", "no-store")], keep)

    async def _work(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)


async def main(ctx: Context) -> None:
    origin = Origin(ctx)
    server = await asyncio.start_server(origin.handle, host=ctx.config.get("address", "0.0.0.0"), port=int(ctx.config.get("port", 80)), backlog=1024)
    ctx.ready(port=int(ctx.config.get("port", 80)))
    async with server:
        await ctx.stopping.wait()


if __name__ == "__main__":
    serve(main)
