"""HTTP/1.1 messages over asyncio streams: the I/O half of ``lab.core.http1``."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Awaitable, TypeVar

from lab.core.http1 import LENGTH, MAX_HEAD, NONE, UNTIL_CLOSE, ChunkedScanner, HttpError

T = TypeVar("T")


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``await`` with a deadline; asyncio.timeout (3.11+) is cheaper than wait_for's extra task."""
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def take_idle(idle: "deque[Conn]") -> Conn | None:
    """The most recently used kept-alive connection that is still open, closing dead ones."""
    while idle:
        conn = idle.pop()
        if not conn[0].at_eof() and not conn[1].is_closing():
            return conn
        conn[1].close()
    return None


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
