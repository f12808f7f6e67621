"""A shared HTTP cache (RFC 9111, with RFC 5861's stale-while-revalidate and stale-if-error): pure, time passed in.

What it decides, on parsed heads only (the data path, ``lab.services.cache_layer``,
moves the bytes):

- **May this answer be stored?** (``storable``) Only a final answer of a
  status the cache understands, to GET, without ``no-store`` (request or
  answer) or ``private``; a request with ``Authorization`` only when the
  answer says ``public``, ``s-maxage`` or ``must-revalidate``; and only with
  something that makes it reusable: ``public``, ``max-age``, ``s-maxage``,
  ``Expires``, or a status that may be cached heuristically. Headers that
  must not be stored (hop-by-hop, ``Proxy-*``, those named by
  ``no-cache="..."``/``private="..."``) are dropped before storing.
- **How long is it fresh?** (``freshness_lifetime``) ``s-maxage``, else
  ``max-age``, else ``Expires`` minus ``Date``, else heuristically
  ``heuristic_percent`` of the time since ``Last-Modified`` (Squid's
  ``refresh_pattern . 0 20% 4320`` is 20 % up to three days; RFC 9111
  suggests 10 %).
- **How old is it now?** (``current_age``, RFC 9111 4.2.3 exactly) and the
  ``Age`` a reused answer must carry.
- **What to do with a request** (``Cache.lookup``): a fresh hit, a stale
  copy that must be validated (``If-None-Match``/``If-Modified-Since``) or
  may be served while it is (``stale-while-revalidate``), a miss; honouring
  the request's ``no-cache``, ``max-age``, ``max-stale``, ``min-fresh``,
  ``only-if-cached`` and ``Pragma: no-cache``; keyed by the URI and the
  request headers the stored answer's ``Vary`` names (``Vary: *`` never
  matches).
- **After the origin answered:** a 304 refreshes the stored headers
  (``Cache.refreshed``); an error may be hidden by a stale copy within
  ``stale-if-error`` unless ``must-revalidate`` forbids it; a successful
  unsafe method invalidates the URI and its ``Location``/``Content-Location``
  (``Cache.invalidate``).
- **Room:** entries are evicted least-recently-used first, by bytes.
"""
from __future__ import annotations

import email.utils
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from lab.core.http1 import HOP_BY_HOP
from lab.core.schema import setting

Headers = Sequence[tuple[str, str]]

# RFC 9111 4.2.2: statuses whose answers may be reused with a heuristic lifetime
HEURISTIC = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
# RFC 9110's status codes: a cache understands these (must-understand stores only these)
KNOWN = frozenset({200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408,
                   409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 500, 501, 502, 503, 504, 505})
# never stored: 206 (this cache does not assemble ranges) and 304 (it only refreshes a stored answer)
NOT_STORED = frozenset({206, 304})
NEVER_STORED = HOP_BY_HOP | frozenset({"proxy-authentication-info"})
DESCRIBES_STORED_BYTES = frozenset({"content-length", "content-encoding", "content-range", "content-md5", "etag"})
UNSAFE_ERROR = frozenset({500, 502, 503, 504})  # what stale-if-error may hide (RFC 5861 4)
MAX_DELTA = 2**31  # RFC 9111 1.2.2: a larger delta-seconds is taken as this

# lookup results
FRESH, STALE_OK, VALIDATE, MISS = "fresh", "stale-ok", "validate", "miss"


@dataclass(frozen=True)
class CacheSettings:
    enabled: bool = setting(False, "keep answers and serve them again while they are fresh (RFC 9111)")
    max_bytes: int = setting(64 * 1024 * 1024, "room for stored answers; least recently used go first", minimum=1024)
    max_object: int = setting(8 * 1024 * 1024, "the largest answer stored (larger ones pass through)", minimum=1)
    heuristic_percent: float = setting(10.0, "a heuristic lifetime: this share of the time since Last-Modified (RFC 9111: "
                                             "10 %; Squid 20 %)", minimum=0, maximum=100)
    heuristic_max: float = setting(86400.0, "the longest heuristic lifetime, seconds (Squid: 3 days)", minimum=0)
    collapse: bool = setting(True, "concurrent misses for one key wait for a single origin request (Varnish does; "
                                   "nginx proxy_cache_lock, Squid collapsed_forwarding)")
    collapse_timeout: float = setting(5.0, "seconds a collapsed request waits before asking the origin itself", minimum=0.01)


# ---- header values ------------------------------------------------------------------------
def directives(values: Iterable[str]) -> dict[str, str | None]:
    """Cache-Control (or Pragma) lines -> directive name (lower case) -> argument (unquoted) or None.

    A directive given twice with different arguments is kept as ``"conflict"``
    so that its user can treat it as invalid (RFC 9111 4.2.1: use the first,
    or consider the answer stale; this cache does the careful thing).
    """
    out: dict[str, str | None] = {}
    for value in values:
        for part in _split(value):
            name, eq, arg = part.partition("=")
            name = name.strip().lower()
            if not name:
                continue
            arg_value = _unquote(arg.strip()) if eq else None
            if name in out and out[name] != arg_value:
                out[name] = "conflict"
            else:
                out[name] = arg_value
    return out


def _split(value: str) -> list[str]:
    """Split on commas outside quoted strings."""
    parts, current, quoted = [], [], False
    i = 0
    while i < len(value):
        c = value[i]
        if c == '"':
            quoted = not quoted
        elif c == "\\" and quoted and i + 1 < len(value):
            current.append(c)
            i += 1
            c = value[i]
        elif c == "," and not quoted:
            parts.append("".join(current))
            current = []
            i += 1
            continue
        current.append(c)
        i += 1
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def delta(arg: str | None) -> int | None:
    """A delta-seconds argument (RFC 9111 1.2.2): digits only; None when absent or invalid."""
    if arg is None or not arg.isascii() or not arg.isdigit():
        return None
    return min(int(arg), MAX_DELTA)


def age_header(values: list[str]) -> int:
    """The Age an answer arrived with: the first value's leading digits ("7200.0", "7200;x=1" are 7200); a value
    that does not start with a digit says nothing trustworthy, so the answer is taken as very old (stale)."""
    if not values:
        return 0
    first = values[0].split(",")[0].strip()
    digits = first[:len(first) - len(first.lstrip("0123456789"))]
    return min(int(digits), MAX_DELTA) if digits else MAX_DELTA


def http_date(value: str | None) -> float | None:
    """An HTTP-date (the three formats of RFC 9110 5.6.7) as a timestamp; None when invalid."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def header(headers: Headers, name: str) -> str | None:
    name = name.lower()
    values = [v for k, v in headers if k.lower() == name]
    return ", ".join(values) if values else None


def all_values(headers: Headers, name: str) -> list[str]:
    name = name.lower()
    return [v for k, v in headers if k.lower() == name]


# ---- one stored answer ----------------------------------------------------------------------
@dataclass
class Entry:
    key: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    request_time: float
    response_time: float
    vary: dict[str, str | None] = field(default_factory=dict)  # request header -> its value when stored (None: absent)
    vary_star: bool = False
    # worked out once per stored answer, not per hit (``forget`` after its headers change)
    _cc: dict[str, str | None] | None = field(default=None, repr=False, compare=False)
    _initial_age: float | None = field(default=None, repr=False, compare=False)
    lifetime: float | None = field(default=None, repr=False, compare=False)
    head: bytes | None = field(default=None, repr=False, compare=False)  # the data path's rendered headers

    @property
    def size(self) -> int:
        return len(self.body) + sum(len(k) + len(v) + 4 for k, v in self.headers) + 64

    @property
    def cc(self) -> dict[str, str | None]:
        if self._cc is None:
            self._cc = directives(all_values(self.headers, "cache-control"))
        return self._cc

    def forget(self) -> None:
        self._cc = self._initial_age = self.lifetime = self.head = None

    def date(self) -> float:
        return http_date(header(self.headers, "date")) or self.response_time

    def current_age(self, now: float) -> float:
        """RFC 9111 4.2.3."""
        if self._initial_age is None:
            age_value = age_header(all_values(self.headers, "age"))
            apparent_age = max(0.0, self.response_time - self.date())
            response_delay = self.response_time - self.request_time
            self._initial_age = max(apparent_age, age_value + response_delay)  # corrected_initial_age
        return self._initial_age + max(0.0, now - self.response_time)

    def validators(self) -> list[tuple[str, str]]:
        """The conditional headers that ask the origin whether this copy is still good."""
        out = []
        etag = header(self.headers, "etag")
        if etag:
            out.append(("If-None-Match", etag))
        modified = header(self.headers, "last-modified")
        if modified and http_date(modified) is not None:
            out.append(("If-Modified-Since", modified))
        return out


def freshness_lifetime(status: int, headers: Headers, response_time: float, settings: CacheSettings) -> float:
    """RFC 9111 4.2.1 for a shared cache; 0 when nothing makes it fresh."""
    cc = directives(all_values(headers, "cache-control"))
    for name in ("s-maxage", "max-age"):
        if name in cc:
            value = delta(cc[name])
            return 0.0 if value is None else float(value)  # an invalid or conflicting value: stale (careful)
    expires_values = all_values(headers, "expires")
    if expires_values:
        expires = http_date(expires_values[0]) if len(expires_values) == 1 else None
        if expires is None:
            return 0.0  # RFC 9111 5.3: an invalid Expires means already expired
        date = http_date(header(headers, "date")) or response_time
        return max(0.0, expires - date)
    modified = http_date(header(headers, "last-modified"))
    if modified is not None and (status in HEURISTIC or "public" in cc):
        date = http_date(header(headers, "date")) or response_time
        return min(settings.heuristic_max, max(0.0, date - modified) * settings.heuristic_percent / 100)
    return 0.0


def storable(method: str, status: int, request: Headers, response: Headers) -> str | None:
    """None when a shared cache may store this answer; otherwise why not (said in the event and the X-Cache header)."""
    if method != "GET":
        return f"{method} answers are not stored"
    if status < 200 or status in NOT_STORED:
        return f"status {status} is not one this cache stores"
    req_cc = directives(all_values(request, "cache-control"))
    cc = directives(all_values(response, "cache-control"))
    if "must-understand" in cc:
        if status not in KNOWN:
            return f"must-understand, and status {status} is not one this cache understands"
    elif "no-store" in cc:
        return "the answer said no-store"
    if "no-store" in req_cc:
        return "the request said no-store"
    if "private" in cc and cc["private"] is None:
        return "the answer is private (for one user only)"
    if header(request, "authorization") is not None and not ({"public", "s-maxage", "must-revalidate"} & set(cc)):
        return "the request carried Authorization and the answer did not say public, s-maxage or must-revalidate"
    if header(response, "set-cookie") is not None and not ({"public", "s-maxage"} & set(cc)) and "set-cookie" not in _named(cc):
        # RFC 9111 allows it, but a cookie is usually one user's session: shared caches (nginx, Varnish) keep these out
        # unless the origin says the answer is for everyone, or names Set-Cookie in no-cache/private to strip it
        return "the answer sets a cookie (one user's); say public or s-maxage to share it"
    if header(response, "vary") and "*" in [v.strip() for v in header(response, "vary").split(",")]:  # type: ignore[union-attr]
        return "Vary: * (no request can ever match it)"
    if ({"public", "max-age", "s-maxage"} & set(cc)) or all_values(response, "expires"):
        return None  # explicit freshness: any final status (RFC 9110 15: its class is understood)
    if status in HEURISTIC and header(response, "last-modified") is not None:
        return None
    if status in HEURISTIC and "no-cache" in cc:
        return None  # stored, but validated before every reuse
    return "nothing in the answer makes it reusable (no max-age, s-maxage, Expires, public or Last-Modified)"


def _named(cc: Mapping[str, str | None]) -> set[str]:
    """Header names that no-cache="..." and private="..." name (stripped before storing)."""
    return {t.strip().lower() for name in ("no-cache", "private") if cc.get(name) for t in (cc[name] or "").split(",")}


def stored_headers(response: Headers) -> list[tuple[str, str]]:
    """The headers kept with a stored answer: minus hop-by-hop ones, Connection-named ones, and those
    ``no-cache="..."``/``private="..."`` name (RFC 9111 3.1, 5.2.2.4, 5.2.2.7)."""
    cc = directives(all_values(response, "cache-control"))
    named = {t.strip().lower() for v in all_values(response, "connection") for t in v.split(",")} | _named(cc)
    return [(k, v) for k, v in response if k.lower() not in NEVER_STORED and k.lower() not in named]


def secondary_key(vary: str | None, request: Headers) -> tuple[dict[str, str | None], bool]:
    """The request's values for the headers ``vary`` names (normalised), and whether it is ``Vary: *``."""
    if not vary:
        return {}, False
    names = [n.strip().lower() for n in vary.split(",") if n.strip()]
    if "*" in names:
        return {}, True
    return {n: _normal(header(request, n)) for n in names}, False


def _normal(value: str | None) -> str | None:
    """Values that differ only in whitespace around commas match (RFC 9111 4.1)."""
    return None if value is None else ",".join(part.strip() for part in value.split(","))


# ---- the store ----------------------------------------------------------------------------
@dataclass
class Lookup:
    result: str  # FRESH, STALE_OK, VALIDATE or MISS
    entry: Entry | None = None
    age: float = 0.0
    why: str = ""


class Cache:
    """Entries by primary key (the URI), each with its variants (Vary); LRU by bytes."""

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self.entries: OrderedDict[str, list[Entry]] = OrderedDict()
        self.bytes = 0

    def lookup(self, key: str, method: str, request: Headers, now: float) -> Lookup:
        """What to do with a GET or HEAD for ``key`` at ``now``."""
        req_cc = directives(all_values(request, "cache-control"))
        if not req_cc and "no-cache" in directives(all_values(request, "pragma")):
            req_cc = {"no-cache": None}  # RFC 9111 5.4: Pragma only when there is no Cache-Control
        entry = self._match(key, request)
        if entry is None:
            return Lookup(MISS, why="not in the cache")
        self.entries.move_to_end(key)
        cc = entry.cc
        age = entry.current_age(now)
        if entry.lifetime is None:
            entry.lifetime = freshness_lifetime(entry.status, entry.headers, entry.response_time, self.settings)
        lifetime = entry.lifetime
        staleness = age - lifetime
        if "no-cache" in req_cc:
            return Lookup(VALIDATE, entry, age, "the request said no-cache")
        if "no-cache" in cc and cc["no-cache"] is None:
            return Lookup(VALIDATE, entry, age, "the answer said no-cache: validate before every reuse")
        wanted_age = delta(req_cc.get("max-age")) if "max-age" in req_cc else None
        if wanted_age is not None and age > wanted_age:
            return Lookup(VALIDATE, entry, age, f"the request wants it at most {wanted_age} s old; it is {age:.0f} s")
        min_fresh = delta(req_cc.get("min-fresh")) if "min-fresh" in req_cc else None
        if min_fresh is not None and lifetime - age < min_fresh:
            return Lookup(VALIDATE, entry, age, f"the request wants it fresh for {min_fresh} s more")
        if staleness < 0:
            return Lookup(FRESH, entry, age, f"fresh: {age:.0f} s old of {lifetime:.0f} s")
        no_stale = {"must-revalidate", "proxy-revalidate", "s-maxage"} & set(cc)
        if "max-stale" in req_cc and not no_stale:
            allowed = delta(req_cc["max-stale"]) if req_cc["max-stale"] is not None else MAX_DELTA
            if allowed is not None and staleness <= allowed:
                return Lookup(STALE_OK, entry, age, f"stale by {staleness:.0f} s, which the request's max-stale allows")
        swr = delta(cc.get("stale-while-revalidate")) if "stale-while-revalidate" in cc else None
        if swr is not None and staleness <= swr and not no_stale:
            return Lookup(STALE_OK, entry, age, f"stale by {staleness:.0f} s, within stale-while-revalidate={swr}: "
                                                "served while one request validates it")
        return Lookup(VALIDATE, entry, age, f"stale by {staleness:.0f} s")

    def may_serve_stale_on_error(self, entry: Entry, request: Headers, now: float) -> bool:
        """RFC 5861 4: stale-if-error (from the answer or the request), unless the answer forbids serving stale."""
        cc = entry.cc
        if {"must-revalidate", "proxy-revalidate", "s-maxage", "no-cache"} & set(cc):
            return False
        staleness = entry.current_age(now) - freshness_lifetime(entry.status, entry.headers, entry.response_time, self.settings)
        windows = [delta(cc.get("stale-if-error"))] if "stale-if-error" in cc else []
        req_cc = directives(all_values(request, "cache-control"))
        if "stale-if-error" in req_cc:
            windows.append(delta(req_cc["stale-if-error"]))
        return any(w is not None and staleness <= w for w in windows)

    def _match(self, key: str, request: Headers) -> Entry | None:
        for entry in reversed(self.entries.get(key, ())):  # the newest variant first
            if entry.vary_star:
                continue
            if not entry.vary or all(_normal(header(request, name)) == value for name, value in entry.vary.items()):
                return entry
        return None

    def store(self, key: str, status: int, reason: str, request: Headers, response: Headers, body: bytes,
              request_time: float, response_time: float) -> Entry | None:
        """Keep an answer (``storable`` said yes); None when it is too large."""
        if len(body) > self.settings.max_object:
            return None
        vary, star = secondary_key(header(response, "vary"), request)
        entry = Entry(key, status, reason, stored_headers(response), body, request_time, response_time, vary, star)
        variants = [e for e in self.entries.get(key, []) if e.vary != vary or e.vary_star != star]
        for old in self.entries.get(key, []):
            if old not in variants:
                self.bytes -= old.size
        self.entries[key] = variants + [entry]
        self.entries.move_to_end(key)
        self.bytes += entry.size
        self._evict()
        return entry

    def refreshed(self, entry: Entry, response: Headers, request_time: float, response_time: float) -> Entry:
        """A 304 for ``entry``: its stored headers take the new ones (RFC 9111 3.2), its clock restarts.

        Not those that describe the stored bytes themselves (RFC 9111 3.2: "header fields that the cache's
        stored response depends upon"): their length, coding, range, digest and entity tag stay the stored
        answer's, or the copy would be served with a description of some other representation.
        """
        new = stored_headers(response)
        names = {k.lower() for k, _ in new} - DESCRIBES_STORED_BYTES
        headers = [(k, v) for k, v in entry.headers if k.lower() not in names] + [(k, v) for k, v in new if k.lower() in names]
        self.bytes -= entry.size
        entry.headers, entry.request_time, entry.response_time = headers, request_time, response_time
        entry.forget()
        self.bytes += entry.size
        self._evict()
        return entry

    def invalidate(self, *keys: str) -> int:
        """Drop every variant stored for each key (after an unsafe method); how many were dropped."""
        dropped = 0
        for key in keys:
            for entry in self.entries.pop(key, []):
                self.bytes -= entry.size
                dropped += 1
        return dropped

    def _evict(self) -> None:
        while self.bytes > self.settings.max_bytes and self.entries:
            _, variants = self.entries.popitem(last=False)
            self.bytes -= sum(e.size for e in variants)


UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def normal_path(target: str) -> str:
    """RFC 3986 6.2.2: percent-encoded unreserved characters decoded ("/%61" is "/a"), other escapes in upper case.

    Two spellings of one resource must be one cache entry, or a request can
    fill the cache under a key that another spelling bypasses (key confusion).
    """
    if "%" not in target:
        return target
    out, i = [], 0
    while i < len(target):
        c, pair = target[i], target[i + 1:i + 3]
        if c == "%" and len(pair) == 2 and all(h in "0123456789abcdefABCDEF" for h in pair):
            char = chr(int(pair, 16))
            out.append(char if char in UNRESERVED else "%" + pair.upper())
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)


def cache_key(authority: str, target: str) -> str:
    """The primary key: the effective URI (RFC 9111 2), host in lower case, path normalised.

    An absolute-form target (``GET http://site/a``) names its own authority,
    which takes the place of Host, as a proxy reads it (RFC 9112 3.2.2).
    """
    if "://" in target[:10]:
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        authority, target = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    return f"{authority.lower()}{normal_path(target)}"


def related_keys(authority: str, target: str, response: Headers) -> list[str]:
    """The keys an unsafe method's success invalidates: its own, and Location/Content-Location on the same host."""
    keys = [cache_key(authority, target)]
    for value in all_values(response, "location") + all_values(response, "content-location"):
        value = value.strip()
        if value.startswith("/"):
            keys.append(cache_key(authority, value))
        elif "://" in value:
            rest = value.split("://", 1)[1]
            host, _, path = rest.partition("/")
            if host.lower() == authority.lower():
                keys.append(cache_key(authority, "/" + path))
    return keys


def not_modified(request: Headers, entry: Entry) -> bool:
    """The client's own conditional request is satisfied by ``entry``: answer 304 (RFC 9110 13.1.2, 13.1.3)."""
    inm = header(request, "if-none-match")
    if inm is not None:
        etag = header(entry.headers, "etag")
        if inm.strip() == "*":
            return True
        if etag is None:
            return False
        tags = [t.strip() for t in _split(inm)]
        return _weak(etag) in {_weak(t) for t in tags}
    ims = http_date(header(request, "if-modified-since"))
    modified = http_date(header(entry.headers, "last-modified"))
    return ims is not None and modified is not None and modified <= ims


def _weak(tag: str) -> str:
    return tag.strip()[2:] if tag.strip().startswith("W/") else tag.strip()


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def invalidates(method: str, status: int) -> bool:
    """An unsafe method whose answer says it changed something (RFC 9111 4.4)."""
    return method not in SAFE_METHODS and 200 <= status < 400

