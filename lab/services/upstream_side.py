"""The server side of the data path: one kept-alive connection to one server, one exchange at a time.

It sends the exchange's request, reads the answer's head (the plain fast
path keeps its bytes and appends ``Via``/``X-Upstream``; anything unusual is
parsed and rewritten), relays the body in its framing, and reports the
outcome to the gateway: ``finished``, ``aborted`` (the answer broke off after
its head went out) or ``upstream_failed`` (nothing went out: the gateway may
retry). An observer on the exchange sees the answer as it goes.
"""
from __future__ import annotations

import asyncio

from lab.core.forwarding import rewrite
from lab.core.http1 import (
    CHUNKED,
    IDEMPOTENT,
    LENGTH,
    MAX_HEAD,
    NONE,
    UNTIL_CLOSE,
    ChunkedScanner,
    HttpError,
    parse_response_head,
    plain_response,
    response_framing,
)
from lab.services.exchange import ANSWERING, SENT, Exchange, Gateway, Upstream, UpstreamError
from lab.services.httpio import take_idle


class UpstreamSide(asyncio.Protocol):
    """One kept-alive connection to one server; carries one exchange at a time."""

    def __init__(self, gateway: Gateway, server: Upstream) -> None:
        self.gateway = gateway
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
        self.tag = f"Via: 1.1 {gateway.via}\r\nX-Upstream: {server.name}\r\n\r\n".encode("latin-1")
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
        x.state = SENT
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
        self.deadline = self.loop.time() + self.gateway.timeout_server
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
            added = [("Via", f"1.1 {self.gateway.via}"), ("X-Upstream", self.server.name)]
            if x.tried:
                added.append(("X-Retries", str(len(x.tried))))
            if self.framing == CHUNKED:  # hop-by-hop, so dropped by rewrite(); the chunks are relayed as they are
                added.append(("Transfer-Encoding", "chunked"))
                self.scanner = ChunkedScanner()
            out = rewrite(head, data[:end + 2], added)
        self.head_out = True
        x.state = ANSWERING
        if x.observer is not None:
            x.observer.on_head(x, self.status, out)
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
            if x.observer is not None:
                x.observer.on_body(x, data)
            return
        if x.observer is not None:
            x.observer.on_body(x, data[:used])
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
            self.gateway.idle[self.server.name].append(self)
        else:
            self.close()
        if x.observer is not None:
            x.observer.on_end(x, True)
        self.gateway.finished(x, self.status)

    def timed_out(self) -> None:
        self.timer = None
        x = self.x
        if x is None:
            return
        if x.client.streaming and not self.head_out:  # the client is still sending: the server's turn has not come
            self.deadline = self.loop.time() + self.gateway.timeout_server
        if self.loop.time() < self.deadline:  # a later request moved the deadline on
            self.timer = self.loop.call_at(self.deadline, self.timed_out)
            return
        if self.head_out:  # half an answer is out: nothing sensible can follow
            self.x = None
            self.close()
            if x.observer is not None:
                x.observer.on_end(x, False)
            self.gateway.aborted(x)
            x.client.close()
            return
        self.fail(UpstreamError(504, "timeout", f"{self.server.name} sent no answer within {self.gateway.timeout_server:g} s", True))

    def fail(self, e: UpstreamError) -> None:
        x = self.x
        self.x = None
        self.close()
        if x is not None:
            self.gateway.upstream_failed(x, e)

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
            if x.observer is not None:
                x.observer.on_end(x, True)
            self.gateway.finished(x, self.status)
            return
        if self.head_out:
            if x.observer is not None:
                x.observer.on_end(x, False)
            self.gateway.aborted(x)
            x.client.close()
            return
        if self.reused and not self.got_bytes and x.head.method in IDEMPOTENT and not x.fresh_retry and x.replayable:
            # A kept-alive connection the server had closed: the request never reached
            # it, so trying once on a fresh connection is safe (HAProxy http-reuse).
            x.fresh_retry = True
            self.gateway.connect(x, self.server)
            return
        self.gateway.upstream_failed(x, UpstreamError(502, "reset", f"{self.server.name} closed the connection: "
                                                       f"{type(exc).__name__ if exc else 'EOF'}", True))


def idle_connection(idle: list[UpstreamSide]) -> UpstreamSide | None:
    """The most recently used kept-alive connection to a server that is still open."""
    return take_idle(idle, _open)


def _open(conn: UpstreamSide) -> bool:
    return not conn.closed
