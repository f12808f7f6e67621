"""One request's way through an HTTP intermediary, and the seams around the data path.

The data path (``lab.services.proxy``) moves bytes; what it moves them for
is decided by a ``Gateway`` (today the L7 balancer), which asks its
``Upstreams`` where each exchange goes:

- a pool of named servers behind a balancing algorithm (the gateway, the
  reverse proxy: the client does not know the servers);
- the host the request itself names (a forward proxy: the client chose the
  proxy and names the origin in an absolute-form target);
- a tunnel for CONNECT (a forward proxy relaying bytes it cannot read).

An ``Observer`` (a cache, a recorder) can watch an answer on its way to the
client through ``on_head``/``on_body``/``on_end``; an exchange without one
pays a single attribute test per read.

An exchange's ``state`` says where it is, one of ``STATES``; the data path
and the gateway move it along, and the statistics and tests read it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

from lab.core.client_limits import ClientLimits
from lab.core.http1 import Head, HttpError
from lab.core.rate_limit import RateLimit

if TYPE_CHECKING:
    from lab.services.cache_layer import CacheLayer
    from lab.services.proxy import ClientSide
    from lab.services.upstream_side import UpstreamSide

# where an exchange is (each step only ever moves forward, except a retry: back to CONNECTING)
RECEIVED = "received"  # its head is parsed; the gateway has not placed it yet
QUEUED = "queued"  # waiting for a free slot (maxconn)
CONNECTING = "connecting"  # a server is chosen; a connection to it is being opened
SENT = "sent"  # the request is on its way to the server, or there
ANSWERING = "answering"  # the answer's head went to the client; its body follows
DONE = "done"  # answered (by the server, or with an error of the gateway's own)
STATES = (RECEIVED, QUEUED, CONNECTING, SENT, ANSWERING, DONE)


class Upstream(Protocol):
    """A server an exchange can be sent to."""

    name: str
    address: str
    port: int


class Observer(Protocol):
    """Sees an answer on its way to the client (a cache stores it, a recorder records it)."""

    def on_head(self, x: "Exchange", status: int, head: bytes) -> None: ...

    def on_body(self, x: "Exchange", data: bytes) -> None: ...

    def on_end(self, x: "Exchange", complete: bool) -> None: ...


class Upstreams(Protocol):
    """Where exchanges go, and what happens to a server's standing when one ends there."""

    def pick(self, x: "Exchange") -> Upstream | None:
        """The next server for ``x``, never one in ``x.tried``; None: nowhere left to go."""
        ...

    def release(self, x: "Exchange", ok: bool) -> None:
        """The attempt of ``x`` at ``x.server`` ended (``ok``: not the server's fault)."""
        ...


class Gateway(Protocol):
    """What the data path asks of the intermediary it serves (the balancer, next a forward proxy)."""

    name: str  # the node, in request ids
    via: str  # this hop in Via: the node's name, with a comment for some ("fp1 (halab)")
    limits: ClientLimits
    rate_limit: RateLimit | None  # requests a second per client address (limits.rate_limit), or None
    timeout_server: float
    idle: dict[str, list["UpstreamSide"]]  # kept-alive server connections by server name
    idle_closed: int
    cache: "CacheLayer | None"  # answers what it can before any server is asked

    def dispatch(self, x: "Exchange") -> None: ...

    def connect(self, x: "Exchange", server: Upstream) -> None: ...

    def finished(self, x: "Exchange", status: int) -> None: ...

    def aborted(self, x: "Exchange") -> None: ...

    def upstream_failed(self, x: "Exchange", e: "UpstreamError") -> None: ...

    def refused(self, client_ip: str, e: HttpError) -> None: ...

    def client_gave_up(self, x: "Exchange", why: str) -> None: ...


class UpstreamError(Exception):
    def __init__(self, status: int, kind: str, message: str, sent: bool) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.sent = sent  # the request reached the server: not safe to replay a POST


class Exchange:
    """One client request on its way through the gateway (slots: one is made per request)."""

    __slots__ = ("client", "head", "_request", "render", "number", "keep", "tried", "server", "started", "fresh_retry", "body",
                 "conn", "replayable", "add_host", "state", "observer")

    def __init__(self, client: "ClientSide", head: Head, request: bytes | None, keep: bool,
                 render: Callable[[], bytes] | None = None) -> None:
        self.client = client
        self.head = head
        self._request = request
        # ``request`` made when first asked for: a forward proxy's rewrite is wasted on an answer its cache gives
        self.render = render
        self.number = 0  # the gateway's request counter, for the request id
        self.keep = keep
        self.tried: list[str] = []
        self.server: Upstream | None = None
        self.started = 0.0
        self.fresh_retry = False  # already re-sent once on a new connection after a stale kept-alive one
        self.body: bytearray | None = None  # a streamed body's bytes that came before a server connection did
        self.conn: "UpstreamSide | None" = None  # the server connection carrying it now
        self.replayable = True  # false once streamed body bytes went to a server: they are not kept to send again
        self.add_host = False  # an HTTP/1.0 request without Host: the chosen server's address is added
        self.state = RECEIVED
        self.observer: Observer | None = None

    @property
    def request(self) -> bytes:
        """The forwarded head (and the body, when it came whole), ready to write."""
        request = self._request
        if request is None:
            assert self.render is not None
            request = self._request = self.render()
        return request

    @request.setter
    def request(self, value: bytes) -> None:
        self._request = value

    @property
    def rid(self) -> str:
        """The id events carry: the client's X-Request-Id, else gateway-name-counter (built only when logged)."""
        return self.head.get("X-Request-Id") or f"{self.client.gateway.name}-{self.number}"
