"""A CONNECT tunnel: after ``200 Connection established`` the proxy relays bytes it cannot read.

The client asked ``CONNECT host:443``; from then on its connection and the
proxy's connection to the origin are one pipe. Whatever crosses it (almost
always TLS) is copied as it comes, counted, and never parsed: this is why a
proxy's log shows only ``host:port`` and byte counts for HTTPS.

Each end is an asyncio Protocol; the client's end takes over the client's
transport (``set_protocol``) from the HTTP data path. Flow control runs
across: when one side cannot take more, the other is not read. A half close
(one side's EOF) is passed on as a half close; the tunnel ends when both
sides are done, either side resets, or nothing crosses for ``idle`` seconds.
"""
from __future__ import annotations

import asyncio
from typing import Callable

CLIENT, SERVER = "client", "server"
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"  # Squid's words


class End(asyncio.Protocol):
    """One side of the tunnel."""

    def __init__(self, tunnel: "Tunnel", side: str) -> None:
        self.tunnel = tunnel
        self.side = side
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.tunnel.relay(self.side, data)

    def eof_received(self) -> bool:
        return self.tunnel.eof(self.side)

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.close("reset" if exc is not None else "closed")

    def pause_writing(self) -> None:
        self.tunnel.other(self.side).pause()

    def resume_writing(self) -> None:
        self.tunnel.other(self.side).resume()

    def pause(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


class Tunnel:
    """Two ends, their byte counts (``up``: client to server), and why it ended."""

    def __init__(self, idle: float, on_close: Callable[["Tunnel", str], None]) -> None:
        self.loop = asyncio.get_running_loop()
        self.ends = {CLIENT: End(self, CLIENT), SERVER: End(self, SERVER)}
        self.idle = idle
        self.on_close = on_close
        self.up = self.down = 0
        self.started = self.last = self.loop.time()
        self.eofs: set[str] = set()
        self.closed = False
        self.timer = self.loop.call_at(self.last + idle, self.check_idle)

    def other(self, side: str) -> End:
        return self.ends[SERVER if side == CLIENT else CLIENT]

    def join(self, client: asyncio.Transport, early: bytes = b"") -> None:
        """The client's connection becomes the tunnel's client end; ``early``: bytes it sent after the CONNECT head."""
        end = self.ends[CLIENT]
        end.transport = client
        client.set_protocol(end)
        client.resume_reading()  # the HTTP side may have paused it
        if early:
            self.relay(CLIENT, early)

    def relay(self, side: str, data: bytes) -> None:
        target = self.other(side).transport
        if target is None or target.is_closing():
            return
        target.write(data)
        if side == CLIENT:
            self.up += len(data)
        else:
            self.down += len(data)
        self.last = self.loop.time()

    def eof(self, side: str) -> bool:
        """One side finished sending: tell the other (a half close), end when both have."""
        self.eofs.add(side)
        target = self.other(side).transport
        if target is not None and not target.is_closing() and target.can_write_eof():
            target.write_eof()
        if len(self.eofs) == 2:
            self.close("closed")
            return False
        return True  # keep the other direction open

    def check_idle(self) -> None:
        self.timer = None
        if self.closed:
            return
        due = self.last + self.idle
        if self.loop.time() < due:
            self.timer = self.loop.call_at(due, self.check_idle)
            return
        self.close("idle")

    def close(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        for end in self.ends.values():
            if end.transport is not None:
                end.transport.close()  # what is already written still goes out first
        self.on_close(self, why)

    @property
    def duration(self) -> float:
        return self.loop.time() - self.started
