"""Malformed health-check answers: a server that answers every probe wrongly, one way per name (``python -m lab.packets.bad_health``).

A health checker trusts nothing it reads: an origin in trouble (a proxy in
front of it, a half-dead process, a port reused by something else) can
answer a probe with anything. Each answer below is one such way; a checker
must count every one of them as a failed probe with a reason a student can
read, never pass it, never crash on it and never wait past its timeout.
``tests/unit/test_bad_health.py`` holds halab's checker to that, answer by
answer; HAProxy calls the same outcomes "Layer7 invalid response", "Layer7
wrong status", "Layer4 timeout" and "Layer4 connection problem".

Run as a server it answers with the named kind, or with each kind in turn
(``--kind rotate``), so a balancer's check of it can be watched in the CLI:

    python -m lab.packets.bad_health --port 8080 --kind rotate
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from typing import Iterator

# name -> (what the server sends, whether it then keeps the connection open and silent, what it means)
ANSWERS: dict[str, tuple[bytes, bool, str]] = {
    "not_http": (b"SSH-2.0-OpenSSH_9.2\r\n", False, "another program took the port: not HTTP at all"),
    "closed": (b"", False, "accepts the connection and closes it at once (a crashing worker)"),
    "bad_status_line": (b"HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n", False, "a status line without a status code"),
    "status_out_of_range": (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", False, "a four-digit status"),
    "http_500": (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", False, "a well-formed answer that says it failed"),
    "http_503": (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n", False, "overloaded, and says so"),
    "header_without_colon": (b"HTTP/1.1 200 OK\r\nthis line has no colon\r\nContent-Length: 0\r\n\r\n", False, "a header line that is not a field"),
    "bad_content_length": (b"HTTP/1.1 200 OK\r\nContent-Length: twelve\r\n\r\n", False, "a 200 whose length is not a number"),
    "two_content_lengths": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", False, "a 200 with two lengths that disagree"),
    "length_and_chunked": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", False,
                           "a 200 framed two ways at once (how responses get smuggled)"),
    "bare_lf": (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", True, "lines ended by LF alone, never the blank CRLF line"),
    "endless_head": (b"HTTP/1.1 200 OK\r\nX-A: 1\r\n", True, "a head that starts and never ends (a stuck server)"),
    "huge_head": (b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 70000 + b"\r\n\r\n", False, "a head far over any limit"),
    "silence": (b"", True, "accepts the connection and never answers (a frozen process)"),
}


def kinds(kind: str) -> Iterator[str]:
    return itertools.cycle(ANSWERS) if kind == "rotate" else itertools.repeat(kind)


async def answer(name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the probe's head (or give up after a second), send the kind's bytes, then close or keep silent."""
    data, silent, _ = ANSWERS[name]
    try:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1)
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    try:
        writer.write(data)
        await writer.drain()
        if silent:
            await reader.read()  # until the checker gives up and closes
    except OSError:
        pass
    finally:
        writer.close()


async def serve(host: str, port: int, kind: str) -> asyncio.AbstractServer:
    order = kinds(kind)
    return await asyncio.start_server(lambda r, w: answer(next(order), r, w), host, port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.packets.bad_health")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--kind", default="rotate", choices=["rotate", *ANSWERS])
    args = parser.parse_args(argv)

    async def run() -> None:
        server = await serve(args.host, args.port, args.kind)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
