"""halab's userspace L4 proxy: a TCP relay that balances connections, not requests.

Each client connection gets a backend (the same ``Pool`` and algorithms as
the L7 balancer, asked once per connection with the client's address as
the only thing known about it) and a second TCP connection to that backend;
bytes are copied both ways until both sides have closed. So the origin sees
the relay's address and a new port and ISN, unless ``proxy_protocol`` puts
a header in front saying who the client was.

What it can do that NAT cannot: try another backend when a connect fails
(``retries``, as HAProxy's redispatch) and count connections in flight
(least connections). What it cannot do, being L4: see a request, so a
kept-alive client's requests all go where its connection went, and a
backend that dies mid-connection is a reset the client sees.

With ``flush_on_down`` the connections of a backend marked DOWN are cut
(HAProxy ``on-marked-down shutdown-sessions``).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from lab.core.balancing import Pool, RequestInfo, Server
from lab.core.l4 import L4Settings
from lab.core.proxy_protocol import encode
from lab.events import EventLog
from lab.services.runtime import listening_socket

CHUNK = 65536


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: tuple[asyncio.StreamWriter, ...]) -> None:
    """Copy until the reader's end, then pass the half-close on.

    If a side breaks (a reset, not a close), both connections of the session
    are reset at once: the other direction's copy then ends too, and each
    peer learns what happened the way it would without a relay.
    """
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        for w in session:
            w.transport.abort()


class Relay:
    def __init__(self, pool: Pool, settings: L4Settings, log: EventLog) -> None:
        self.pool = pool
        self.settings = settings
        self.log = log
        self.servers: list[asyncio.AbstractServer] = []
        # per backend, its open sessions: (client side, backend side)
        self.sessions: dict[str, set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]]] = {s.name: set() for s in pool.servers}
        self.counters = {"connections": 0, "failed": 0, "retried": 0, "cut": 0}

    async def start(self, addresses: list[str], port: int) -> None:
        for address in addresses:
            self.servers.append(await asyncio.start_server(self.handle, sock=listening_socket(address, port), backlog=4096))

    def close(self) -> None:
        for server in self.servers:
            server.close()

    def health_changed(self, name: str, up: bool) -> None:
        self.pool.set_up(name, up, time.monotonic())
        if not up and self.settings.flush_on_down:
            cut = list(self.sessions[name])
            for pair in cut:
                for writer in pair:
                    writer.transport.abort()  # a reset both ways, as HAProxy's shutdown-sessions
            self.counters["cut"] += len(cut)
            self.log.emit("flows_flushed", server=name, flows=len(cut))

    def set_server(self, req: dict[str, Any]) -> dict[str, Any]:
        """The operator's command (the CLI's drain and undrain): new connections follow it, open ones go on."""
        server = self.pool[req["server"]]
        changes = {k: req[k] for k in ("weight", "drain") if k in req}
        for key, value in changes.items():
            setattr(server, key, int(value) if key == "weight" else bool(value))
        self.log.emit("server_changed", server=server.name, **changes)
        return {"server": server.name, "drain": server.drain, "weight": server.weight}

    def statistics(self) -> dict[str, Any]:
        return {**self.counters, "servers": {s.name: {"up": s.up, "active": s.active, "picked": s.picked} for s in self.pool.servers}}

    async def connect(self, client: tuple[str, int]) -> tuple[Server, asyncio.StreamReader, asyncio.StreamWriter] | None:
        """A backend connection for this client: the algorithm's choice, then others while connects fail."""
        tried: list[str] = []
        for attempt in range(self.settings.retries + 1):
            server = self.pool.pick(RequestInfo(client=client[0]), exclude=tried, now=time.monotonic())
            if server is None:
                break
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(server.address, server.port),
                                                        self.settings.timeout_connect)
                self.log.emit("connection_routed", client=f"{client[0]}:{client[1]}", server=server.name, attempt=attempt)
                return server, reader, writer
            except (OSError, asyncio.TimeoutError) as e:
                tried.append(server.name)
                self.counters["retried"] += 1
                error = "timeout" if isinstance(e, asyncio.TimeoutError) else type(e).__name__
                self.log.emit("connection_retried", client=f"{client[0]}:{client[1]}", server=server.name, error=error)
        self.counters["failed"] += 1
        self.log.emit("connection_failed", client=f"{client[0]}:{client[1]}", tried=tried,
                      error="no backend is UP" if not tried else "every connect failed")
        return None

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        peer = client_writer.get_extra_info("peername")
        local = client_writer.get_extra_info("sockname")
        self.counters["connections"] += 1
        chosen = await self.connect(peer)
        if chosen is None:
            client_writer.transport.abort()  # nothing behind: the client gets a reset, as from a closed port
            return
        server, reader, writer = chosen
        server.active += 1
        session = (client_writer, writer)
        self.sessions[server.name].add(session)
        try:
            if self.settings.proxy_protocol != "none":
                writer.write(encode(self.settings.proxy_protocol, peer[0], peer[1], local[0], local[1]))
            await asyncio.gather(pipe(client_reader, writer, session), pipe(reader, client_writer, session))
        finally:
            server.active -= 1
            self.sessions[server.name].discard(session)
            for w in session:
                w.close()
