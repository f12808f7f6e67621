"""What every HTTP intermediary of halab does with a request once it knows where it goes.

The gateway (``lab.services.balancer``: a pool of origins behind an
algorithm) and the forward proxy (``lab.services.forward_proxy``: the host
the client named) differ in one question, where an exchange goes
(``attempt``), and in what they log. The rest is the same and lives here:
admission (maxconn and its queue), connecting within ``timeout_connect``,
retrying what may be retried, the error answers (502 when the server
refuses or breaks the connection, 504 when it is too slow, as nginx), the
client leaving mid-body, and the counters the statistics read.

The data path (``lab.services.proxy``, ``lab.services.upstream_side``)
calls these methods; they are the ``Gateway`` seam of
``lab.services.exchange``.
"""
from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Callable

from lab.core.client_limits import ClientLimits
from lab.core.dispatch import Admission, may_retry
from lab.core.forwarding import REPLACED, REPLACED_TRUSTING_HOST
from lab.core.http1 import HttpError, error_response
from lab.core.rate_limit import RateLimit
from lab.events import EventLog
from lab.services.exchange import CONNECTING, DONE, QUEUED, Exchange, Observer, Upstream, UpstreamError
from lab.services.httpio import within
from lab.services.upstream_side import UpstreamSide, idle_connection

if TYPE_CHECKING:
    from lab.services.cache_layer import CacheLayer


class Intermediary:
    """The shared half of a gateway; subclasses say where an exchange goes (``attempt``) and what a server's outcome means."""

    def __init__(self, name: str, log: EventLog, limits: ClientLimits, timeout_connect: float, timeout_server: float,
                 retries: int = 0, maxconn: int = 0, via: str | None = None) -> None:
        self.name = name
        self.via = via or name  # this hop in Via ("1.1 gw1", "1.1 fp1 (halab)")
        self.log = log
        self.limits = limits
        self.timeout_connect = timeout_connect
        self.timeout_server = timeout_server
        self.retries = retries
        self.idle: dict[str, list[UpstreamSide]] = defaultdict(list)  # kept-alive server connections, by server name
        # Opt-in: a function giving each exchange an observer of its answer (a cache); None costs nothing.
        self.observe: Callable[[Exchange], Observer | None] | None = None
        self.cache: CacheLayer | None = None  # a cache answers before any server is asked (the subclass makes it)
        self.errors: dict[str, int] = defaultdict(int)  # failed attempts by server name
        self.admission: Admission[Exchange] = Admission(maxconn)  # HAProxy maxconn (0: no limit)
        # nginx limit_req per client address, shared by every connection (0: no limit)
        self.rate_limit = RateLimit(limits.rate_limit, limits.rate_burst) if limits.rate_limit else None
        # the client's headers a request loses on its way on (X-Forwarded-Host only when it is not trusted)
        self.replaced = REPLACED_TRUSTING_HOST if limits.trust_forwarded_host else REPLACED
        self.requests = 0
        self.retried = 0
        self.bad_requests = 0
        self.refusals: dict[str, int] = {}  # kind -> requests refused (malformed, smuggling, head_timeout, ...)
        self.idle_closed = 0  # quiet closes of connections that asked nothing within their timeout
        self.client_aborts = 0

    # ---- what subclasses decide ------------------------------------------------------
    def attempt(self, x: Exchange) -> None:
        """Choose where ``x`` goes (never a server in ``x.tried``) and ``send`` it, or answer it with an error."""
        raise NotImplementedError

    def release(self, x: Exchange, ok: bool) -> None:
        """The attempt of ``x`` at ``x.server`` ended (``ok``: not the server's fault)."""

    def ended(self, x: Exchange, status: int, error: str | None) -> None:
        """``x`` has its final answer (``error``: the kind of failure, when the answer is an error of ours)."""

    # ---- the life of an exchange -------------------------------------------------------
    def admit_exchange(self, x: Exchange) -> None:
        """Count a request, give it its observer, and send it on now or when a slot frees up."""
        self.requests += 1
        x.number = self.requests
        if self.observe is not None:
            x.observer = self.observe(x)
        if self.admission.arrive(x):
            self.attempt(x)
        else:
            x.state = QUEUED  # until a request in flight finishes

    @property
    def in_flight(self) -> int:
        return self.admission.in_flight

    def done_with(self, x: Exchange) -> None:
        """A request has its answer (or its error): let the next queued one through, unless its client left."""
        x.state = DONE
        nxt = self.admission.leave(lambda queued: not queued.client.closed)
        if nxt is not None:
            self.attempt(nxt)

    def send(self, x: Exchange, server: Upstream) -> None:
        """``x`` goes to ``server``: on a kept-alive connection if one is open, else on a new one."""
        x.server = server
        x.started = time.monotonic()
        conn = idle_connection(self.idle[server.name])
        if conn is not None:
            conn.send(x, reused=True)
        else:
            self.connect(x, server)

    def connect(self, x: Exchange, server: Upstream) -> None:
        x.state = CONNECTING
        asyncio.get_running_loop().create_task(self._connect(x, server))

    async def _connect(self, x: Exchange, server: Upstream) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await within(self.timeout_connect, loop.create_connection(lambda: UpstreamSide(self, server), server.address, server.port))
        except asyncio.TimeoutError:
            self.upstream_failed(x, UpstreamError(504, "connect_timeout", f"no TCP connection to {server.name} within {self.timeout_connect:g} s", False))
            return
        except OSError as e:
            kind = "connect_refused" if isinstance(e, ConnectionRefusedError) else "connect_error"
            self.upstream_failed(x, UpstreamError(502, kind, f"cannot connect to {server.name}: {e.strerror or e}", False))
            return
        if x.client.closed:  # the client gave up meanwhile
            conn.close()
            x.conn = None
            self.release(x, ok=True)
            self.done_with(x)
            return
        conn.send(x, reused=False)

    def answer_error(self, x: Exchange, status: int, message: str, headers: list[tuple[str, str]], error: str) -> None:
        """Answer ``x`` with an error page of ours and finish it."""
        x.keep = x.keep and not x.client.streaming
        x.client.write(error_response(status, message, [("Via", f"1.1 {self.via}"), *headers], x.keep))
        self.done_with(x)
        self.ended(x, status, error)
        x.client.finish(x.keep)

    def refused(self, client_ip: str, e: HttpError) -> None:
        """A request refused at the door (malformed, too large, too slow): counted by kind, one event each."""
        self.bad_requests += 1
        self.refusals[e.kind] = self.refusals.get(e.kind, 0) + 1
        self.log.emit("request_rejected", client=client_ip, status=e.status, reason=e.kind, error=e.message)

    def client_gave_up(self, x: Exchange, why: str) -> None:
        """The client left (or was cut off) in the middle of its request's body: free the server it was going to."""
        conn = x.conn
        if conn is None or conn.x is not x or x.server is None:
            return  # not at a server (queued or still connecting): that path notices the closed client itself
        self.client_aborts += 1
        conn.x = None
        conn.close()
        self.release(x, ok=True)  # not the server's fault: neither its health nor its error count suffer
        self.log.emit("request_aborted", id=x.rid, server=x.server.name, reason=why)
        self.done_with(x)

    def finished(self, x: Exchange, status: int) -> None:
        self.release(x, status < 500)
        self.done_with(x)
        self.ended(x, status, None)
        x.client.finish(x.keep)

    def aborted(self, x: Exchange) -> None:
        """The answer broke off halfway (headers already out): count it, drop the client."""
        assert x.server is not None
        self.errors[x.server.name] += 1
        self.release(x, ok=False)
        self.done_with(x)
        self.ended(x, 0, "aborted")

    def upstream_failed(self, x: Exchange, e: UpstreamError) -> None:
        server = x.server
        assert server is not None
        self.errors[server.name] += 1
        self.release(x, ok=False)
        x.tried.append(server.name)
        if may_retry(len(x.tried), self.retries, x.replayable, e.sent, x.head.method):
            self.retried += 1
            self.log.emit("request_retried", id=x.rid, server=server.name, error=e.kind, detail=e.message)
            x.fresh_retry = False
            self.attempt(x)
            return
        self.log.emit("request_failed", id=x.rid, server=server.name, status=e.status, error=e.kind, detail=e.message)
        self.answer_error(x, e.status, e.message, [("X-Upstream", server.name)], e.kind)
