"""The balancer's data path: HTTP/1.1 relayed between asyncio Protocols.

Streams (``StreamReader``/``StreamWriter``) cost a future, a buffer copy and
a coroutine switch per read; at tens of thousands of requests a second that
is most of the time a Python proxy spends. Here both sides are Protocols:
bytes arrive in ``data_received`` and go straight out on the other side's
transport, timeouts are timer handles, and a request's life is an
``Exchange`` object passed between two callbacks.

    client --> ClientSide.data_received -> parse head -> Balancer.dispatch
           -> pick a server -> an idle UpstreamSide (kept alive) or a new one
           -> UpstreamSide.data_received -> parse the answer's head -> relay
           -> Balancer.finished / Balancer.upstream_failed (retry, 502/504)

What it does is unchanged from the stream version: the same events, error
answers, retries and keep-alive rules (see ``lab.services.balancer``).

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
from typing import TYPE_CHECKING

from lab.core.client_limits import ClientLimits
from lab.core.http1 import (
    CHUNKED, HOP_BY_HOP, IDEMPOTENT, LENGTH, MAX_HEAD, NONE, UNTIL_CLOSE, ChunkedScanner, Head, HttpError,
    check_partial_request, error_response, forward_headers, parse_request_head, parse_response_head, plain_response, render_head,
    request_framing, response_framing,
)

if TYPE_CHECKING:
    from lab.core.algorithms.base import Server
    from lab.services.balancer import Balancer

# Body bytes held for a server we are still connecting to; past this the client
# is not read until they are sent. With the transports' own 64 KiB write
# buffers and one 256 KiB read each, this is what bounds the memory a client
# can make the balancer hold: about 1.5 MiB per connection, however large the
# body it announces (README, "The gateway under attack").
PENDING_LIMIT = 256 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class UpstreamError(Exception):
    def __init__(self, status: int, kind: str, message: str, sent: bool) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.sent = sent  # the request reached the server: not safe to replay a POST


class Exchange:
    """One client request on its way through the balancer (slots: one is made per request)."""

    __slots__ = ("client", "head", "request", "number", "keep", "tried", "server", "started", "fresh_retry", "body", "conn",
                 "replayable", "add_host")

    def __init__(self, client: "ClientSide", head: Head, request: bytes, keep: bool) -> None:
        self.client = client
        self.head = head
        self.request = request  # the forwarded head (and the body, when it came whole), ready to write
        self.number = 0  # the balancer's request counter, for the request id
        self.keep = keep
        self.tried: list[str] = []
        self.server: "Server | None" = None
        self.started = 0.0
        self.fresh_retry = False  # already re-sent once on a new connection after a stale kept-alive one
        self.body: bytearray | None = None  # a streamed body's bytes that came before a server connection did
        self.conn: "UpstreamSide | None" = None  # the server connection carrying it now
        self.replayable = True  # false once streamed body bytes went to a server: they are not kept to send again
        self.add_host = False  # an HTTP/1.0 request without Host: the chosen server's address is added

    @property
    def rid(self) -> str:
        """The id events carry: the client's X-Request-Id, else lb-name-counter (built only when logged)."""
        return self.head.get("X-Request-Id") or f"{self.client.balancer.name}-{self.number}"


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

    def __init__(self, balancer: "Balancer") -> None:
        self.balancer = balancer
        self.limits: ClientLimits = balancer.limits
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
        self.tail = forward_tail(self.ip, self.balancer.name)
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
        lim, b = self.limits, self.balancer
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
                self.start(head, forwarded(head, raw, self.ip, self.balancer.name, self.tail) + bytes(buf[end + 4:need]), need)
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
                expect = self.admit(head, framing, length)
            except HttpError as e:
                self.reject(e)
                return
            if framing == NONE:
                self.start(head, forwarded(head, raw, self.ip, self.balancer.name, self.tail), end + 4)
            elif framing == LENGTH and length <= lim.buffer_body:
                need = end + 4 + length
                if len(buf) >= need:  # the usual small POST: whole, so a failed attempt can be replayed
                    self.start(head, forwarded(head, raw, self.ip, self.balancer.name, self.tail) + bytes(buf[end + 4:need]), need)
                    continue
                if expect:
                    self.write(CONTINUE)
                self.waiting = (head, end, need, expect)
                self.arm(self.loop.time() + lim.timeout_client, "body")  # type: ignore[union-attr]
                return
            else:
                self.stream(head, raw, framing, length, expect)

    def admit(self, head: Head, framing: str, length: int) -> bool:
        """Refuse what a gateway must not pass on; say whether the client waits for a 100 Continue."""
        if head.method == "CONNECT":
            raise HttpError(405, "CONNECT opens a tunnel; that is a forward proxy's job, not a gateway's")
        if self.limits.max_body and framing == LENGTH and length > self.limits.max_body:
            raise HttpError(413, f"a body of {length} bytes is more than the limit of {self.limits.max_body}")
        expect = head.get("expect")
        if expect is None:
            return False
        if expect.lower() != "100-continue":
            raise HttpError(417, f"Expect: {expect[:40]!r} is not an expectation this server meets (only 100-continue)")
        return head.version == "HTTP/1.1" and framing != NONE

    def start(self, head: Head, request: bytes, used: int) -> None:
        """A request whose head and (small) body are all here: off to the balancer."""
        buf = self.buffer
        if len(buf) == used:
            self.buffer = bytearray()  # the usual case: nothing pipelined behind it
        else:
            del buf[:used]
        self.busy = True
        self.deadline = None  # the server's timeout runs now (no timer work: the lazy timer finds nothing to do)
        self.phase = "wait"
        x = self.x = Exchange(self, head, request, head.keep_alive())
        if "host" not in head.index:
            x.add_host = True
        self.balancer.dispatch(x)

    def stream(self, head: Head, raw: bytes, framing: str, length: int, expect: bool) -> None:
        """A large or chunked body: the request goes out now and its body follows as it arrives."""
        rest = bytes(self.buffer[len(raw):])
        self.buffer = bytearray()
        x = self.x = Exchange(self, head, forwarded(head, raw, self.ip, self.balancer.name, chunked=framing == CHUNKED), head.keep_alive())
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
        self.balancer.dispatch(x)
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
            conn.deadline = self.loop.time() + self.balancer.timeout_server  # type: ignore[union-attr]  # the wait for its answer starts now
        if used < len(data):
            self.buffer += data[used:]  # the next pipelined request, read when this one is answered

    def abort_body(self, e: HttpError) -> None:
        """The body went wrong halfway (malformed, too large, stalled): the exchange cannot go on."""
        x = self.x
        self.streaming = False
        answered = x is not None and x.conn is not None and x.conn.head_out
        if x is not None:
            self.balancer.client_gave_up(x, e.kind)
        if answered:
            self.balancer.refused(self.ip, e)
            self.close()
        else:
            self.reject(e)

    def reject(self, e: HttpError) -> None:
        self.balancer.refused(self.ip, e)
        self.write(error_response(e.status, e.message, [("Via", f"1.1 {self.balancer.name}")]))
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

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.streaming and self.x is not None:  # gone in the middle of a body: the server must not wait for the rest
            self.streaming = False
            self.balancer.client_gave_up(self.x, "client_closed")

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()


class UpstreamSide(asyncio.Protocol):
    """One kept-alive connection to one server; carries one exchange at a time."""

    def __init__(self, balancer: "Balancer", server: "Server") -> None:
        self.balancer = balancer
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.x: Exchange | None = None
        self.closed = False
        # One timer per connection, re-armed lazily: a call_later per request (and its
        # cancel) costs more than the rest of the bookkeeping. ``deadline`` moves with
        # each request; when the timer fires early it just sleeps until the new deadline.
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0
        # The lines added to a plain answer from this server, encoded once.
        self.tag = f"Via: 1.1 {balancer.name}\r\nX-Upstream: {server.name}\r\n\r\n".encode("latin-1")
        self.host_line = f"Host: {server.address}{'' if server.port == 80 else f':{server.port}'}\r\n".encode("latin-1")
        self.reset()

    def reset(self) -> None:
        self.pending = b""  # the answer's head while it arrives in pieces
        self.got_bytes = False
        self.head_out = False
        self.status = 0
        self.framing = NONE
        self.remaining = 0
        self.scanner: ChunkedScanner | None = None
        self.keep = False
        self.reused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, x: Exchange, reused: bool) -> None:
        self.reset()
        self.x = x
        x.conn = self
        self.reused = reused
        x.client.upstream = self
        assert self.transport is not None
        request = x.request
        if x.add_host:  # HTTP/1.0 without Host: name the server, as nginx and HAProxy do
            line = request.find(b"\r\n") + 2
            request = request[:line] + self.host_line + request[line:]
        if x.body:
            request += x.body
        self.transport.write(request)
        self.deadline = self.loop.time() + self.balancer.timeout_server
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, self.timed_out)

    def pause_writing(self) -> None:  # a server slower to read a streamed body than the client is to send it
        if self.x is not None:
            self.x.client.pause("upstream")

    def resume_writing(self) -> None:
        if self.x is not None:
            self.x.client.resume("upstream")

    def data_received(self, data: bytes) -> None:
        x = self.x
        if x is None:  # nothing asked: a server talking out of turn is not to be trusted
            self.close()
            return
        self.got_bytes = True
        if self.head_out:
            self.body(data)
            return
        if self.pending:
            data = self.pending + data  # heads are small (MAX_HEAD): copying them again is cheap
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > MAX_HEAD:
                self.fail(UpstreamError(502, "bad_response", f"{self.server.name}: answer head longer than {MAX_HEAD} bytes", True))
            else:
                self.pending = data
            return
        self.pending = b""
        if data[9:10] == b"1" and data.startswith(b"HTTP/1."):
            # An interim answer (100 Continue, 103 Early Hints): halab already told the client to
            # go on, so it is dropped; the final answer follows. 101 would switch protocols,
            # which this gateway does not relay (Upgrade is hop-by-hop and never forwarded).
            if data[9:12] == b"101":
                self.fail(UpstreamError(502, "bad_response", f"{self.server.name} switched protocols (101) unasked", True))
                return
            rest = data[end + 4:]
            if rest:
                self.data_received(rest)
            return
        plain = plain_response(data[:end + 4], x.head.start[0])
        if plain is not None:  # the usual answer: kept as received, our lines added
            self.status, self.framing, self.remaining, self.keep = plain
            retried = f"X-Retries: {len(x.tried)}\r\n".encode() if x.tried else b""  # so the client's records show who a retry saved
            out = data[:end + 2] + retried + self.tag
        else:
            try:
                head = parse_response_head(data[:end + 4])
                self.framing, self.remaining = response_framing(head, x.head.start[0])
            except HttpError as e:
                self.fail(UpstreamError(502, "bad_response", f"{self.server.name}: {e.message}", True))
                return
            self.status = int(head.start[1])
            self.keep = head.keep_alive() and self.framing != UNTIL_CLOSE
            added = [("Via", f"1.1 {self.balancer.name}"), ("X-Upstream", self.server.name)]
            if x.tried:
                added.append(("X-Retries", str(len(x.tried))))
            if self.framing == CHUNKED:  # hop-by-hop, so dropped by rewrite(); the chunks are relayed as they are
                added.append(("Transfer-Encoding", "chunked"))
                self.scanner = ChunkedScanner()
            out = rewrite(head, data[:end + 2], added)
        self.head_out = True
        self.body(data[end + 4:], out)  # head and (usually all of) the body in one write: one syscall, one packet

    def body(self, data: bytes, head: bytes = b"") -> None:
        x = self.x
        assert x is not None
        if self.framing == NONE:
            used = 0
            x.client.write(head)
        elif self.framing == LENGTH:
            used = min(self.remaining, len(data))
            x.client.write(head + data[:used])
            self.remaining -= used
            if self.remaining:
                return
        elif self.framing == CHUNKED:
            assert self.scanner is not None
            used = self.scanner.feed(data)
            x.client.write(head + data[:used])
            if not self.scanner.done:
                return
        else:  # until close: connection_lost ends it
            x.client.write(head + data)
            return
        if used < len(data):
            self.keep = False  # bytes after the answer: the server is confused; do not reuse it
        self.complete()

    def complete(self) -> None:
        x = self.x
        assert x is not None
        self.x = None  # the timer, left armed, finds nothing to time out (see __init__)
        if x.client.streaming:
            self.keep = False  # answered before the request's body was all sent: this connection is mid-request
        if self.keep and not self.closed:
            self.balancer.idle[self.server.name].append(self)
        else:
            self.close()
        self.balancer.finished(x, self.status)

    def timed_out(self) -> None:
        self.timer = None
        x = self.x
        if x is None:
            return
        if x.client.streaming and not self.head_out:  # the client is still sending: the server's turn has not come
            self.deadline = self.loop.time() + self.balancer.timeout_server
        if self.loop.time() < self.deadline:  # a later request moved the deadline on
            self.timer = self.loop.call_at(self.deadline, self.timed_out)
            return
        if self.head_out:  # half an answer is out: nothing sensible can follow
            self.x = None
            self.close()
            self.balancer.aborted(x)
            x.client.close()
            return
        self.fail(UpstreamError(504, "timeout", f"{self.server.name} sent no answer within {self.balancer.timeout_server:g} s", True))

    def fail(self, e: UpstreamError) -> None:
        x = self.x
        self.x = None
        self.close()
        if x is not None:
            self.balancer.upstream_failed(x, e)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def close(self) -> None:
        self.cancel_timer()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.cancel_timer()
        x = self.x
        if x is None:
            return
        self.x = None
        if self.head_out and self.framing == UNTIL_CLOSE:
            x.keep = False  # the client, too, can only see the end of this body as the end of the connection
            self.balancer.finished(x, self.status)
            return
        if self.head_out:
            self.balancer.aborted(x)
            x.client.close()
            return
        if self.reused and not self.got_bytes and x.head.method in IDEMPOTENT and not x.fresh_retry and x.replayable:
            # A kept-alive connection the server had closed: the request never reached
            # it, so trying once on a fresh connection is safe (HAProxy http-reuse).
            x.fresh_retry = True
            self.balancer.connect(x, self.server)
            return
        self.balancer.upstream_failed(x, UpstreamError(502, "reset", f"{self.server.name} closed the connection: "
                                                       f"{type(exc).__name__ if exc else 'EOF'}", True))


def idle_connection(idle: list[UpstreamSide]) -> UpstreamSide | None:
    """The most recently used kept-alive connection still open."""
    while idle:
        conn = idle.pop()
        if not conn.closed:
            return conn
    return None


def rewrite(head: Head, raw: bytes, added: list[tuple[str, str]], start: tuple[str, str, str] | None = None,
            drop: frozenset[str] = frozenset()) -> bytes:
    """The message head to send on: minus hop-by-hop headers, plus ``added``.

    ``raw`` is the head as received, up to (not including) its blank line.
    Most heads carry no hop-by-hop header at all; then the received bytes are
    kept and the new lines appended, which saves rebuilding every header line
    on the hot path. Otherwise the head is rebuilt from the parsed headers.
    """
    if start is None and HOP_BY_HOP.isdisjoint(head.index) and drop.isdisjoint(head.index):
        return raw + "".join(f"{k}: {v}\r\n" for k, v in added).encode("latin-1") + b"\r\n"
    headers = [(k, v) for k, v in forward_headers(head) if k.lower() not in drop] + added
    return render_head(start or head.start, headers)


# Replaced by our own: X-Forwarded-For is extended, and Expect was answered here (100 Continue).
REPLACED = frozenset({"x-forwarded-for", "expect"})


def forward_tail(client_ip: str, via: str) -> bytes:
    """What ``forwarded`` appends to a plain request (and the blank line)."""
    return f"X-Forwarded-For: {client_ip}\r\nVia: 1.1 {via}\r\nConnection: keep-alive\r\n\r\n".encode("latin-1")


def forwarded(head: Head, raw: bytes, client_ip: str, via: str, tail: bytes = b"", chunked: bool = False) -> bytes:
    """The request as it goes to the server: X-Forwarded-For extended, Via added, kept alive.

    ``raw`` is the head as received, blank line included. ``tail`` is
    ``forward_tail(client_ip, via)``, computed once per client connection: a
    plain HTTP/1.1 request (no hop-by-hop header, no X-Forwarded-For or
    Expect) is then forwarded as its own bytes plus that tail. ``chunked``:
    the body follows chunked, as it came (Transfer-Encoding is hop-by-hop,
    so it is dropped with the others and said again here).
    """
    index = head.index
    if tail and head.start[2] == "HTTP/1.1" and HOP_BY_HOP.isdisjoint(index) and REPLACED.isdisjoint(index):
        return raw[:-2] + tail
    xff = head.get("X-Forwarded-For")
    added = [("X-Forwarded-For", f"{xff}, {client_ip}" if xff else client_ip), ("Via", f"1.1 {via}"), ("Connection", "keep-alive")]
    if chunked:
        added.append(("Transfer-Encoding", "chunked"))
    start = None if head.version == "HTTP/1.1" else (head.method, head.target, "HTTP/1.1")
    return rewrite(head, raw[:-2], added, start, REPLACED)
