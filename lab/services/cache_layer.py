"""The cache on a gateway's data path: answers from storage, or one origin request that fills it.

``lab.core.cache`` decides; this module moves bytes. A GET or HEAD that the
cache can answer (a fresh copy, or a stale one it may serve) is answered
here and never reaches the balancing at all. Otherwise the cache asks the
origin itself: it sends the request through the gateway's own machinery
(admission, balancing, retries) as an internal exchange whose "client" is a
``Fetch`` collecting the answer. A stale copy is asked for conditionally
(``If-None-Match``/``If-Modified-Since``): a 304 refreshes it. When the
origin fails and ``stale-if-error`` allows it, the stale copy hides the
failure. Concurrent misses for one key wait for that single request
(collapsing) instead of each asking the origin.

Every answer says what happened in ``X-Cache`` (``HIT``, ``MISS``,
``REVALIDATED``, ``STALE``, ``UPDATING``; ``from gw1``), and is one
``cache_result`` event with Squid's result code (TCP_HIT, TCP_MISS,
TCP_REFRESH_UNMODIFIED, TCP_REFRESH_MODIFIED, TCP_REFRESH_FAIL_OLD ...).
A cache that is off costs the data path one attribute test per request.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from lab.core import cache as rules
from lab.core.http1 import CHUNKED, LENGTH, NONE, HttpError, dechunk, error_response, parse_response_head, render_head, response_framing
from lab.services.exchange import DONE, Exchange

if TYPE_CHECKING:
    from lab.services.intermediary import Intermediary

LABELS = {"hit": ("HIT", "TCP_HIT"), "updating": ("UPDATING", "TCP_STALE_HIT"),
          "miss": ("MISS", "TCP_MISS"), "revalidated": ("REVALIDATED", "TCP_REFRESH_UNMODIFIED"),
          "modified": ("MISS", "TCP_REFRESH_MODIFIED"), "fail_old": ("STALE", "TCP_REFRESH_FAIL_OLD"),
          "only_if_cached": ("MISS", "TCP_MISS"), "fail_err": ("MISS", "TCP_REFRESH_FAIL_ERR")}
NOT_REPEATED = ("content-length", "transfer-encoding", "age", "x-cache")  # a stored copy's headers this layer writes afresh
CONDITIONAL = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range", "range")


class Fetch:
    """Stands in for a client on the request the cache sends to the origin: collects the answer."""

    streaming = False

    def __init__(self, layer: "CacheLayer", front: Exchange) -> None:
        self.layer = layer
        self.gateway = layer.gateway
        self.ip = front.client.ip
        # what a forward proxy knows of the client it acts for: where the request goes, who asked
        self.dest = getattr(front.client, "dest", None)
        self.user = getattr(front.client, "user", None)
        self.upstream: Any = None
        self.closed = False
        self.data = bytearray()
        self.done = False
        self.waiters: list[Exchange] = [front]
        self.entry: rules.Entry | None = None  # the stale copy being validated, if any
        self.validating = False  # our own validators were added to the request
        self.request_time = time.time()
        self.collapsible = True
        self.key = ""

    # what the data path calls on a client
    def write(self, data: bytes) -> None:
        if not self.closed:
            self.data += data

    def pause(self, reason: str) -> None:  # the answer is held whole: nothing to slow down
        pass

    def resume(self, reason: str) -> None:
        pass

    def finish(self, keep: bool) -> None:
        if not self.done:
            self.done = True
            self.layer.fetched(self, complete=True)

    def close(self) -> None:  # the answer broke off
        self.closed = True
        if not self.done:
            self.done = True
            self.layer.fetched(self, complete=False)


@dataclass
class Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes = b""


@dataclass
class Counters:
    results: dict[str, int] = field(default_factory=dict)
    origin_requests: int = 0


class CacheLayer:
    def __init__(self, gateway: "Intermediary", settings: rules.CacheSettings, key: Callable[[Exchange], str], log: bool = True) -> None:
        self.gateway = gateway
        self.log = log  # one cache_result event per request (the gateway's log_requests)
        self.settings = settings
        self.cache = rules.Cache(settings)
        self.key = key
        self.pending: dict[str, Fetch] = {}
        self.counters = Counters()

    # ---- a request arrives ---------------------------------------------------------------
    def handle(self, x: Exchange) -> None:
        method = x.head.method
        if method not in ("GET", "HEAD"):
            x.observer = Invalidator(self)
            self.gateway.admit_exchange(x)
            return
        now = time.time()
        key = self.key(x)
        headers = x.head.headers
        found = self.cache.lookup(key, method, headers, now)
        req_cc = rules.directives(rules.all_values(headers, "cache-control"))
        if found.result == rules.FRESH:
            self.serve(x, found.entry, "hit", now, found.why)  # type: ignore[arg-type]
            return
        if found.result == rules.STALE_OK:
            self._revalidate_in_background(key, x, found.entry)  # type: ignore[arg-type]
            self.serve(x, found.entry, "updating", now, found.why)  # type: ignore[arg-type]
            return
        if "only-if-cached" in req_cc:
            self.refuse(x, 504, "only-if-cached, and no usable copy is stored here", key, "only_if_cached")
            return
        self.fetch(x, key, found.entry)

    def fetch(self, x: Exchange, key: str, entry: rules.Entry | None) -> None:
        conditional = any(name in x.head.index for name in CONDITIONAL)
        pending = self.pending.get(key)
        if (pending is not None and pending.collapsible and self.settings.collapse and not conditional
                and x.head.method == "GET"):
            pending.waiters.append(x)  # one origin request for all of them (collapsing)
            asyncio.get_running_loop().call_later(self.settings.collapse_timeout, self._give_up_waiting, pending, x)
            return
        fetch = Fetch(self, x)
        fetch.key = key
        fetch.collapsible = not conditional and x.head.method == "GET"
        request = x.request
        if entry is not None and not conditional:  # the client's own condition goes to the origin as it is
            request = self._validating(fetch, entry, request)
        if fetch.collapsible:
            self.pending[key] = fetch
        self._ask_origin(fetch, x, request)

    def _validating(self, fetch: Fetch, entry: rules.Entry, request: bytes) -> bytes:
        """The request made conditional on the stale copy ``entry`` (when it has validators)."""
        fetch.entry = entry
        validators = entry.validators()
        if not validators or not request.endswith(b"\r\n\r\n"):
            return request
        fetch.validating = True
        return request[:-2] + "".join(f"{k}: {v}\r\n" for k, v in validators).encode("latin-1") + b"\r\n"

    def _ask_origin(self, fetch: Fetch, x: Exchange, request: bytes) -> None:
        """Send ``request`` through the gateway's own admission and balancing, with ``fetch`` collecting the answer."""
        inner = Exchange(fetch, x.head, request, True)  # type: ignore[arg-type]
        inner.add_host = x.add_host
        self.counters.origin_requests += 1
        self.gateway.admit_exchange(inner)

    def _give_up_waiting(self, fetch: Fetch, x: Exchange) -> None:
        """A collapsed request waited long enough: it asks the origin itself."""
        if fetch.done or x not in fetch.waiters or x.client.closed:
            return
        fetch.waiters.remove(x)
        self.fetch_uncollapsed(x)

    def fetch_uncollapsed(self, x: Exchange) -> None:
        fetch = Fetch(self, x)
        fetch.collapsible = False
        fetch.key = self.key(x)
        self._ask_origin(fetch, x, x.request)

    def _revalidate_in_background(self, key: str, x: Exchange, entry: rules.Entry) -> None:
        """stale-while-revalidate: one request refreshes the copy while the stale one is served (none if one runs)."""
        if key in self.pending:
            return
        fetch = Fetch(self, x)
        fetch.waiters = []  # nobody waits: the answer only refreshes the store
        fetch.key = key
        request = self._validating(fetch, entry, x.request)
        self.pending[key] = fetch
        self._ask_origin(fetch, x, request)

    # ---- the origin answered -------------------------------------------------------------
    def fetched(self, fetch: Fetch, complete: bool) -> None:
        if self.pending.get(fetch.key) is fetch:
            del self.pending[fetch.key]
        now = time.time()
        answer = self._parse(bytes(fetch.data), fetch.waiters[0].head.method if fetch.waiters else "GET") if complete else None
        entry = fetch.entry
        front = fetch.waiters[0] if fetch.waiters else None
        request_headers = front.head.headers if front is not None else []
        failed = answer is None or answer.status in rules.UNSAFE_ERROR
        if failed and entry is not None and self.cache.may_serve_stale_on_error(entry, request_headers, now):
            for x in fetch.waiters:
                self.serve(x, entry, "fail_old", now, "the origin failed; stale-if-error allows the stale copy")
            return
        if failed and entry is not None:
            # RFC 9111 4.2.4, 5.2.2.2: a stale copy that may not be served, and an origin that cannot answer: 504
            forbids = [k for k in ("must-revalidate", "proxy-revalidate", "s-maxage", "no-cache") if k in entry.cc]
            allowed = ", ".join(forbids) or "no stale-if-error allows it"
            message = f"the stored copy is stale and may not be served without validation ({allowed}), and the origin failed"
            for x in fetch.waiters:
                self.refuse(x, 504, message, fetch.key, "fail_err")
            return
        if answer is None:
            for x in fetch.waiters:
                self.refuse(x, 502, "the origin's answer broke off", fetch.key)
            return
        if answer.status == 304 and entry is not None and fetch.validating:
            entry = self.cache.refreshed(entry, answer.headers, fetch.request_time, now)
            for x in fetch.waiters:
                self.serve(x, entry, "revalidated", now, "the origin said 304 Not Modified: the stored copy is good")
            return
        why = rules.storable("GET" if front is None else front.head.method, answer.status, request_headers, answer.headers)
        stored = None
        if why is None and complete:
            stored = self.cache.store(fetch.key, answer.status, answer.reason, request_headers, answer.headers, answer.body,
                                      fetch.request_time, now)
            if stored is None:
                why = f"larger than max_object ({self.settings.max_object} bytes)"
        label = "modified" if entry is not None else "miss"
        if stored is not None:
            for x in fetch.waiters:
                self.serve(x, stored, label, now, "stored")
            return
        # not stored: the first asker gets the answer as it came; the others ask for themselves (it may be theirs alone)
        if fetch.waiters:
            self.relay(fetch.waiters[0], answer, label, why or "not stored")
            for x in fetch.waiters[1:]:
                self.fetch_uncollapsed(x)

    def _parse(self, data: bytes, method: str) -> Answer | None:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return None
        try:
            head = parse_response_head(data[:end + 4])
            framing, length = response_framing(head, method)
        except HttpError:
            return None
        rest = data[end + 4:]
        if framing == LENGTH:
            body = rest[:length]
            if len(body) < length:
                return None
        elif framing == CHUNKED:
            try:
                body = dechunk(rest)
            except HttpError:
                return None
        elif framing == NONE:
            body = b""
        else:
            body = rest
        return Answer(int(head.start[1]), head.start[2], list(head.headers), body, data)

    # ---- answering -----------------------------------------------------------------------
    def serve(self, x: Exchange, entry: rules.Entry, what: str, now: float, why: str) -> None:
        """Answer ``x`` from a stored copy (with Age), or 304 when the client's own condition holds."""
        if x.client.closed:
            return
        label, squid = LABELS[what]
        age = min(int(entry.current_age(now)), rules.MAX_DELTA)
        keep = x.keep and not x.client.streaming
        index = x.head.index
        if ("if-none-match" in index or "if-modified-since" in index) and rules.not_modified(x.head.headers, entry):
            headers = [(k, v) for k, v in entry.headers if k.lower() not in NOT_REPEATED]
            headers += [("Age", str(age)), ("X-Cache", f"{label} from {self.gateway.name}")] + ([] if keep else [("Connection", "close")])
            out, status = render_head(("HTTP/1.1", "304", "Not Modified"), headers), 304
        else:
            if entry.head is None:  # rendered once per stored answer: a hit only adds its Age and length
                headers = [(k, v) for k, v in entry.headers if k.lower() not in NOT_REPEATED]
                entry.head = render_head(("HTTP/1.1", str(entry.status), entry.reason), headers)[:-2]
            status, body = entry.status, entry.body
            length = "" if status < 200 or status == 204 else f"Content-Length: {len(body)}\r\n"
            close = "" if keep else "Connection: close\r\n"
            out = entry.head + f"Age: {age}\r\nX-Cache: {label} from {self.gateway.name}\r\n{length}{close}\r\n".encode("latin-1")
            if x.head.method != "HEAD":
                out += body
        self._done(x, out, keep, label, squid, status, entry.key, why, age)

    def relay(self, x: Exchange, answer: Answer, what: str, why: str) -> None:
        """An answer that was not stored, passed on as it came, with X-Cache."""
        if x.client.closed:
            return
        label, squid = LABELS[what]
        raw = answer.raw
        end = raw.find(b"\r\n\r\n")
        keep = x.keep and not x.client.streaming and b"connection: close" not in raw[:end].lower()
        out = raw[:end + 2] + f"X-Cache: {label} from {self.gateway.name}\r\n".encode() + raw[end + 2:]
        self._done(x, out, keep, label, squid, answer.status, self.key(x), why, None)

    def refuse(self, x: Exchange, status: int, message: str, key: str, what: str = "miss") -> None:
        label, squid = LABELS[what]
        out = error_response(status, message, [("Via", f"1.1 {self.gateway.via}"), ("X-Cache", f"{label} from {self.gateway.name}")],
                             x.keep)
        self._done(x, out, x.keep, label, squid, status, key, message, None)

    def _done(self, x: Exchange, out: bytes, keep: bool, label: str, squid: str, status: int, key: str, why: str,
              age: int | None) -> None:
        x.state = DONE
        self.counters.results[squid] = self.counters.results.get(squid, 0) + 1
        if self.log:
            self.gateway.log.emit("cache_result", id=x.rid, key=key, result=label, squid=squid, status=status, age=age, why=why[:120])
        x.client.write(out)
        x.client.finish(keep)


class Invalidator:
    """Watches an unsafe method's answer: a success invalidates the URI (and Location, Content-Location) (RFC 9111 4.4)."""

    def __init__(self, layer: CacheLayer) -> None:
        self.layer = layer

    def on_head(self, x: Exchange, status: int, head: bytes) -> None:
        if not rules.invalidates(x.head.method, status):
            return
        try:
            headers = parse_response_head(head).headers
        except HttpError:
            headers = []
        key = self.layer.key(x)  # authority + normalised path
        authority = key.split("/", 1)[0]
        self.layer.cache.invalidate(*rules.related_keys(authority, key[len(authority):], headers))

    def on_body(self, x: Exchange, data: bytes) -> None:
        pass

    def on_end(self, x: Exchange, complete: bool) -> None:
        pass
