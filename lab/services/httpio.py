"""HTTP/1.1 messages over asyncio streams: the I/O half of ``lab.core.http1``."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, MutableSequence, TypeVar

from lab.core.http1 import LENGTH, MAX_HEAD, NONE, UNTIL_CLOSE, ChunkedScanner, HttpError

T = TypeVar("T")


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``await`` with a deadline; asyncio.timeout (3.11+) is cheaper than wait_for's extra task."""
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
C = TypeVar("C")


def take_idle(idle: MutableSequence[C], usable: Callable[[C], bool], discard: Callable[[C], None] | None = None) -> C | None:
    """The most recently used kept-alive connection that is still usable (the warmest), discarding dead ones.

    One pool rule for every client of an idle pool: the load generator's
    stream pairs and the gateway's server connections.
    """
    while idle:
        conn = idle.pop()
        if usable(conn):
            return conn
        if discard is not None:
            discard(conn)
    return None


def stream_open(conn: Conn) -> bool:
    return not conn[0].at_eof() and not conn[1].is_closing()


def close_stream(conn: Conn) -> None:
    conn[1].close()


class PeerClosed(Exception):
    """The other side closed the connection before a new message began (normal keep-alive end)."""


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """The head of the next message, through the blank line."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            raise PeerClosed() from None
        raise HttpError(400, f"connection closed in the middle of a message head ({len(e.partial)} bytes)") from None
    except asyncio.LimitOverrunError:
        raise HttpError(431, f"message head longer than {MAX_HEAD} bytes") from None


async def read_body(reader: asyncio.StreamReader, framing: str, length: int) -> bytes:
    """The whole body in memory (for small messages: probes, the load generator)."""
    if framing == NONE:
        return b""
    if framing == LENGTH:
        return await reader.readexactly(length)
    if framing == UNTIL_CLOSE:
        return await reader.read()
    body, _ = await _read_chunked(reader, 502, keep=True)
    return body


async def _read_chunked(reader: asyncio.StreamReader, status: int, keep: bool) -> tuple[bytes, int]:
    """A chunked body read to its end: its raw bytes (when ``keep``) and the size of its data."""
    parts = []
    scanner = ChunkedScanner()
    while not scanner.done:
        data = await reader.read(65536)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
        used = scanner.feed(data)
        if keep:
            parts.append(data[:used])
        if used < len(data):
            raise HttpError(status, "bytes after the end of a chunked body (pipelining is not supported)")
    return b"".join(parts), scanner.size


async def discard_body(reader: asyncio.StreamReader, framing: str, length: int) -> int:
    """Read a request body to its end without keeping it (an origin that only counts uploads); its size."""
    if framing == NONE:
        return 0
    if framing == LENGTH:
        left = length
        while left:
            data = await reader.read(min(left, 65536))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(data)
        return length
    _, size = await _read_chunked(reader, 400, keep=False)
    return size
