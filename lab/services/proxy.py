"""The gateway's data path: HTTP/1.1 relayed between asyncio Protocols.

Streams (``StreamReader``/``StreamWriter``) cost a future, a buffer copy and
a coroutine switch per read; at tens of thousands of requests a second that
is most of the time a Python proxy spends. Here both sides are Protocols:
bytes arrive in ``data_received`` and go straight out on the other side's
transport, timeouts are timer handles, and a request's life is an
``Exchange`` object passed between two callbacks.

    client --> ClientSide.data_received -> parse head -> Gateway.dispatch
           -> pick a server -> an idle UpstreamSide (kept alive) or a new one
           -> UpstreamSide.data_received -> parse the answer's head -> relay
           -> Gateway.finished / Gateway.upstream_failed (retry, 502/504)

This module is the client side; ``lab.services.upstream_side`` is the
server side and ``lab.core.forwarding`` rewrites the heads. What a request
is for (where it goes, what counts as a failure) is the ``Gateway``'s
business (``lab.services.exchange``: the seams; today's gateway is
``lab.services.balancer``); the data path only moves its bytes.

Where the time goes (measured on a 2-core VM; ``halab bench balancer``
compares against HAProxy and nginx): a request costs about 12 us of Python
here, of which reading the two heads is about 4 us. What made it that cheap:
one regex match per header section instead of a loop over lines
(``lab.core.http1``), answers read by ``plain_response`` without building a
``Head`` (only the few headers a proxy must act on are looked for), framing
and keep-alive decided from the header index without building token sets,
a message forwarded as the bytes received plus precomputed lines
(``forward_tail``, ``UpstreamSide.tag``), one lazily re-armed timer per
upstream connection instead of a ``call_later`` and a ``cancel`` per
request, and no per-request objects beyond the ``Exchange``.
"""
from __future__ import annotations

import asyncio
from functools import partial
from typing import Callable

from lab.core.client_limits import ClientLimits
from lab.core.forwarding import forward_tail, forwarded
from lab.core.http1 import (
    CHUNKED,
    LENGTH,
    NONE,
    ChunkedScanner,
    Head,
    HttpError,
    check_partial_request,
    error_response,
    parse_request_head,
    request_framing,
)
from lab.services.exchange import Exchange, Gateway, UpstreamError
from lab.services.upstream_side import UpstreamSide, idle_connection

__all__ = ["ClientSide", "Exchange", "UpstreamError", "UpstreamSide", "idle_connection"]  # the data path, for its users

# Body bytes held for a server we are still connecting to; past this the client
# is not read until they are sent. With the transports' own 64 KiB write
# buffers and one 256 KiB read each, this is what bounds the memory a client
# can make the balancer hold: about 1.5 MiB per connection, however large the
# body it announces (README, "The gateway under attack").
PENDING_LIMIT = 256 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ClientSide(asyncio.Protocol):
    """One client connection: reads requests one at a time, refuses what it must, enforces the client timeouts.

    Timers: one per connection, re-armed lazily (as ``UpstreamSide``): the
    usual request arrives whole in one read and never touches it. Phases:
    ``first`` (connected, nothing yet) and ``head`` (part of a head): the
    head must be complete ``timeout_http_request`` after it began, else 408
    (a slowloris client is cut here, whatever it keeps trickling);
    ``body``: at most ``timeout_client`` of silence in the middle of a body;
    ``idle``: between requests, ``timeout_keep_alive``, then a quiet close;
    ``wait``: the server has the request, its own timeout runs.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.limits: ClientLimits = gateway.limits
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.ip = "?"
        self.busy = False  # one request at a time: pipelined ones wait in the buffer
        self.closed = False
        self.upstream: UpstreamSide | None = None
        self.tail = b""
        self.x: Exchange | None = None
        self.streaming = False  # the current request's body is still arriving and going out as it comes
        self.body_left = 0
        self.scanner: ChunkedScanner | None = None
        self.waiting: tuple[Head, int, int, bool] | None = None  # a small body being read whole: head, head end, total, 100 sent
        self.paused: set[str] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.deadline: float | None = None
        self.phase = "first"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.ip = str(peer[0])
        # The lines added to every plain request from this client, encoded once per connection.
        self.tail = forward_tail(self.ip, self.gateway.via)
        self.loop = asyncio.get_running_loop()
        self.arm(self.loop.time() + self.limits.timeout_http_request, "first")

    # ---- timers --------------------------------------------------------------------------
    def arm(self, deadline: float | None, phase: str) -> None:
        self.deadline = deadline
        self.phase = phase
        if deadline is not None and (self.timer is None or deadline < self.timer_at):
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = deadline
            self.timer = self.loop.call_at(deadline, self.timed_out)  # type: ignore[union-attr]

    def timed_out(self) -> None:
        self.timer = None
        if self.closed or self.deadline is None:
            return
        if self.loop.time() < self.deadline:  # type: ignore[union-attr]  # moved on since: sleep until then
            self.timer_at = self.deadline
            self.timer = self.loop.call_at(self.deadline, self.timed_out)  # type: ignore[union-attr]
            return
        lim, b = self.limits, self.gateway
        if self.phase == "idle" or (self.phase == "first" and not self.buffer):
            b.idle_closed += 1  # nothing asked: a quiet close, as HAProxy and nginx do
            self.close()
        elif self.phase == "body":
            self.abort_body(HttpError(408, f"no body bytes for {lim.timeout_client:g} s (timeout client)", "body_timeout"))
        else:
            self.reject(HttpError(408, f"request head not complete within {lim.timeout_http_request:g} s "
                                       f"(timeout http-request; {len(self.buffer)} bytes came)", "head_timeout"))

    # ---- reading requests ----------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.streaming:
            self.body_data(data)
            return
        self.buffer += data
        if not self.busy:
            self.next_request()
        elif len(self.buffer) > self.limits.max_head + self.limits.buffer_body:
            self.pause("backlog")  # pipelined requests piling up behind a slow one: stop reading until it is done

    def next_request(self) -> None:
        lim = self.limits
        while not self.busy and not self.closed and self.buffer:
            buf = self.buffer
            if self.waiting is not None:
                head, end, need, _ = self.waiting
                if len(buf) < need:
                    return
                self.waiting = None
                raw = bytes(buf[:end + 4])
                self.start(head, self.forward(head, raw) + bytes(buf[end + 4:need]), need)
                continue
            if buf[:2] == b"\r\n":  # RFC 9112 2.2: an empty line before a request line is ignored
                del buf[:2]
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if self.phase != "head" and self.phase != "first":
                    self.arm(self.loop.time() + lim.timeout_http_request, "head")  # type: ignore[union-attr]
                try:
                    check_partial_request(buf, lim.max_head)
                except HttpError as e:
                    self.reject(e)
                return
            raw = bytes(buf[:end + 4])
            try:
                head = parse_request_head(raw, lim.max_head, lim.max_headers, lim.max_line)
                framing, length = request_framing(head)
                self.within_rate()
                expect = self.admit(head, framing, length)
            except HttpError as e:
                self.reject(e)
                return
            if framing == NONE:
                render = self.deferred(head, raw)
                self.start(head, self.forward(head, raw) if render is None else None, end + 4, render)
            elif framing == LENGTH and length <= lim.buffer_body:
                need = end + 4 + length
                if len(buf) >= need:  # the usual small POST: whole, so a failed attempt can be replayed
                    self.start(head, self.forward(head, raw) + bytes(buf[end + 4:need]), need)
                    continue
                if expect:
                    self.write(CONTINUE)
                self.waiting = (head, end, need, expect)
                self.arm(self.loop.time() + lim.timeout_client, "body")  # type: ignore[union-attr]
                return
            else:
                self.stream(head, raw, framing, length, expect)

    def within_rate(self) -> None:
        """nginx limit_req: a client over its rate gets a 429 at the door, before it costs any server anything."""
        limit = self.gateway.rate_limit
        if limit is not None and not limit.allow(self.ip, self.loop.time()):  # type: ignore[union-attr]
            wait = limit.retry_after(self.ip, self.loop.time())  # type: ignore[union-attr] - loop is set once connected
            raise HttpError(429, f"{self.ip} sends more than {limit.rate:g} requests a second (burst {limit.burst})",
                            headers=(("Retry-After", str(wait)),))

    def admit(self, head: Head, framing: str, length: int) -> bool:
        """Refuse what a gateway must not pass on; say whether the client waits for a 100 Continue."""
        if head.method == "CONNECT":
            raise HttpError(405, "CONNECT opens a tunnel; that is a forward proxy's job, not a gateway's")
        return self.admit_body(head, framing, length)

    def forward(self, head: Head, raw: bytes, streamed: bool = False, chunked: bool = False) -> bytes:
        """The request as it goes to the server (``raw``: its head as received); a forward proxy rewrites it otherwise."""
        return forwarded(head, raw, self.ip, self.gateway.via, b"" if streamed else self.tail, chunked, self.gateway.replaced)

    def deferred(self, head: Head, raw: bytes) -> Callable[[], bytes] | None:
        """A maker of the forwarded request, for a request that may never be forwarded (a GET or HEAD the gateway's
        cache may answer); None: forward it now."""
        if not self.cache_may_answer(head):
            return None
        return partial(self.forward, head, raw)  # the connection's address and Via lines do not change

    def cache_may_answer(self, head: Head) -> bool:
        return self.gateway.cache is not None and head.method in ("GET", "HEAD")

    def admit_body(self, head: Head, framing: str, length: int) -> bool:
        """The body limit and ``Expect``: whether the client waits for a 100 Continue."""
        if self.limits.max_body and framing == LENGTH and length > self.limits.max_body:
            raise HttpError(413, f"a body of {length} bytes is more than the limit of {self.limits.max_body}")
        expect = head.get("expect")
        if expect is None:
            return False
        if expect.lower() != "100-continue":
            raise HttpError(417, f"Expect: {expect[:40]!r} is not an expectation this server meets (only 100-continue)")
        return head.version == "HTTP/1.1" and framing != NONE

    def start(self, head: Head, request: bytes | None, used: int, render: Callable[[], bytes] | None = None) -> None:
        """A request whose head and (small) body are all here: off to the gateway."""
        buf = self.buffer
        if len(buf) == used:
            self.buffer = bytearray()  # the usual case: nothing pipelined behind it
        else:
            del buf[:used]
        self.busy = True
        self.deadline = None  # the server's timeout runs now (no timer work: the lazy timer finds nothing to do)
        self.phase = "wait"
        x = self.x = Exchange(self, head, request, head.keep_alive(), render)
        if "host" not in head.index:
            x.add_host = True
        self.gateway.dispatch(x)

    def stream(self, head: Head, raw: bytes, framing: str, length: int, expect: bool) -> None:
        """A large or chunked body: the request goes out now and its body follows as it arrives."""
        rest = bytes(self.buffer[len(raw):])
        self.buffer = bytearray()
        x = self.x = Exchange(self, head, self.forward(head, raw, streamed=True, chunked=framing == CHUNKED), head.keep_alive())
        x.body = bytearray()
        x.add_host = "host" not in head.index
        self.streaming = True
        self.busy = True
        if framing == CHUNKED:
            self.scanner = ChunkedScanner()
        else:
            self.body_left = length
        if expect and not rest:
            self.write(CONTINUE)
        self.arm(self.loop.time() + self.limits.timeout_client, "body")  # type: ignore[union-attr]
        self.gateway.dispatch(x)
        if rest and not self.closed:
            self.body_data(rest)

    def body_data(self, data: bytes) -> None:
        x = self.x
        assert x is not None
        try:
            if self.scanner is not None:
                used = self.scanner.feed(data)
                done = self.scanner.done
                if self.limits.max_body and self.scanner.size > self.limits.max_body:
                    raise HttpError(413, f"the chunked body passed the limit of {self.limits.max_body} bytes")
            else:
                used = min(self.body_left, len(data))
                self.body_left -= used
                done = self.body_left == 0
        except HttpError as e:
            self.abort_body(e)
            return
        chunk = data[:used] if used < len(data) else data
        conn = x.conn
        if conn is not None and conn.x is x and conn.transport is not None and not conn.closed:
            conn.transport.write(chunk)
            x.replayable = False
            x.body = None
        elif x.body is not None:
            x.body += chunk
            if len(x.body) > PENDING_LIMIT:
                self.pause("upstream")
        if not done:
            self.deadline = self.loop.time() + self.limits.timeout_client  # type: ignore[union-attr]
            return
        self.streaming = False
        self.scanner = None
        self.deadline = None
        self.phase = "wait"
        if conn is not None and conn.x is x:
            conn.deadline = self.loop.time() + self.gateway.timeout_server  # type: ignore[union-attr]  # the wait for its answer starts now
        if used < len(data):
            self.buffer += data[used:]  # the next pipelined request, read when this one is answered

    def abort_body(self, e: HttpError) -> None:
        """The body went wrong halfway (malformed, too large, stalled): the exchange cannot go on."""
        x = self.x
        self.streaming = False
        answered = x is not None and x.conn is not None and x.conn.head_out
        if x is not None:
            self.gateway.client_gave_up(x, e.kind)
        if answered:
            self.gateway.refused(self.ip, e)
            self.close()
        else:
            self.reject(e)

    def reject(self, e: HttpError) -> None:
        self.gateway.refused(self.ip, e)
        self.write(error_response(e.status, e.message, [("Via", f"1.1 {self.gateway.via}"), *e.headers]))
        self.close()

    # ---- flow control --------------------------------------------------------------------
    def pause(self, reason: str) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused.add(reason)

    def resume(self, reason: str) -> None:
        if reason in self.paused:
            self.paused.discard(reason)
            if not self.paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    def finish(self, keep: bool) -> None:
        self.busy = False
        self.upstream = None
        self.x = None
        if self.streaming or self.waiting is not None:  # answered before the body was all read: no way to find the next request
            keep = False
        if not keep:
            self.close()
            return
        self.resume("backlog")
        if self.buffer:
            self.next_request()
        if not self.busy and not self.closed and not self.buffer:
            self.arm(self.loop.time() + self.limits.timeout_keep_alive, "idle")  # type: ignore[union-attr]

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def detach(self) -> asyncio.Transport:
        """Hand the connection over (to a CONNECT tunnel): this side never touches it again; the bytes it holds go along."""
        assert self.transport is not None
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        return self.transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.streaming and self.x is not None:  # gone in the middle of a body: the server must not wait for the rest
            self.streaming = False
            self.gateway.client_gave_up(self.x, "client_closed")

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()
