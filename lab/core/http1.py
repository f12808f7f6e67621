"""HTTP/1.1 message heads and body framing, without sockets (RFC 9112).

The proxies, the origin and the load generator all speak HTTP/1.1 over
asyncio streams; this module is the part that needs no I/O: parse a head,
say how its body is framed, and find where a chunked body ends. A malformed
message raises ``HttpError`` carrying the status a server should answer
(400, 413, 414, 431, 501, 505), a short ``kind`` for the report, and a
sentence saying exactly what was wrong.

A gateway sits between clients it does not trust and origins that parse
what it forwards. If the two ever disagree on where a request ends, bytes
the gateway took for a body reach an origin as a request nobody routed
(request smuggling). So this parser is strict wherever parsers are known to
differ: one Content-Length or one chunked Transfer-Encoding, never both;
chunk lines exactly ``HEX[;ext] CRLF``; no bare CR or LF, no obs-fold, no
header that frames or routes the message named in Connection (a proxy
would drop it); and every limit is checked with the status it deserves.
"""
from __future__ import annotations

import re

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 5.6.2 token
OWS = " \t"  # RFC 9110 5.6.3 optional whitespace: the only whitespace HTTP trims
MAX_HEAD = 64 * 1024  # an origin's answer head; nginx large_client_header_buffers is 4 x 8k; HAProxy tune.bufsize 16k
MAX_HEADERS = 101  # HAProxy tune.http.maxhdr default
MAX_LINE = 8192  # one header line; nginx large_client_header_buffers: 8k per line
MAX_TARGET = 8192  # request target; nginx answers 414 past its 8k buffer
MAX_LENGTH_DIGITS = 18  # Content-Length below 10^18: a 64-bit offset never overflows (HAProxy and nginx refuse more)
# Headers that frame or route a message: a proxy drops what Connection names,
# so a client that names one of these would have the gateway and the origin
# disagree on the message (RFC 9110 7.6.1 forbids the listing; we refuse it).
PROTECTED = frozenset({"content-length", "transfer-encoding", "host"})
# RFC 9110 7.6.1: meaningful for one connection only; a proxy must not forward them.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}
)
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
REASONS = {
    100: "Continue", 200: "OK", 204: "No Content", 304: "Not Modified", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    407: "Proxy Authentication Required",
    405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
    417: "Expectation Failed", 429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}
# The report groups refused requests by these (status -> kind, unless the error names its own).
KINDS = {400: "malformed", 405: "method", 408: "timeout", 411: "length_required", 413: "body_too_large", 414: "target_too_long",
         417: "expectation", 429: "rate_limited", 431: "head_too_large", 501: "not_implemented", 505: "version", 502: "bad_response"}
SMUGGLING = "smuggling"  # the kind of every refusal that guards against request smuggling


class HttpError(Exception):
    """A message we cannot accept; ``status`` is what to answer, ``kind`` what the report counts it as."""

    def __init__(self, status: int, message: str, kind: str = "", headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind or KINDS.get(status, "malformed")
        self.headers = headers  # sent with the error page (a 407's Proxy-Authenticate)


class Head:
    """Start line and headers. Header names keep their case; lookups ignore it.

    A plain class with ``__slots__`` rather than a dataclass: the balancer
    builds two of these per request, and at tens of thousands of requests a
    second the construction cost shows.
    """

    __slots__ = ("start", "headers", "index")

    def __init__(self, start: tuple[str, str, str], headers: list[tuple[str, str]] | None = None) -> None:
        self.start = start
        self.headers = headers if headers is not None else []
        # lower-case name -> values, built once: every request asks for Host,
        # Connection, Content-Length, Transfer-Encoding... on the proxy's hot path
        index: dict[str, list[str]] = {}
        for key, value in self.headers:
            low = key.lower()
            if low in index:
                index[low].append(value)
            else:
                index[low] = [value]
        self.index = index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Head) and (self.start, self.headers) == (other.start, other.headers)

    def __repr__(self) -> str:
        return f"Head(start={self.start!r}, headers={self.headers!r})"

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.index.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        return self.index.get(name.lower(), [])

    def tokens(self, name: str) -> set[str]:
        """Comma-separated tokens of every ``name`` header, lower-cased (Connection, TE...)."""
        # strip(OWS), never strip(): Python's strip() also eats \x0b, \x1c-\x1f, \x85 and \xa0, so
        # "chunked\xa0" would pass for "chunked" here and not at the next hop (request smuggling).
        return {t.strip(OWS).lower() for v in self.get_all(name) for t in v.split(",") if t.strip(OWS)}

    # request view
    @property
    def method(self) -> str:
        return self.start[0]

    @property
    def target(self) -> str:
        return self.start[1]

    # response view
    @property
    def status(self) -> int:
        return int(self.start[1])

    @property
    def version(self) -> str:
        return self.start[0] if self.start[0].startswith("HTTP/") else self.start[2]

    def keep_alive(self) -> bool:
        """Persistent connection per RFC 9112 9.3: 1.1 unless close, 1.0 only with keep-alive."""
        if "connection" not in self.index:  # the usual case, decided without building a token set
            return self.version == "HTTP/1.1"
        conn = self.tokens("connection")
        if "close" in conn:
            return False
        return self.version == "HTTP/1.1" or "keep-alive" in conn


_TCHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
# A well-formed header section is ``name ":" value CRLF`` again and again and
# nothing else. One C-level match accepts it and one ``findall`` takes it
# apart; that is most of the speed of the balancer's hot path. Anything the
# match refuses goes through the line-by-line parser, which says exactly what
# is wrong (RFC 9110 5.5: a value must not hold CR, LF or NUL).
HEADER_SECTION = re.compile(rf"(?:{_TCHAR}+:[^\r\n\0\x0b\x0c]*\r\n)*")
HEADER_LINE = re.compile(rf"({_TCHAR}+):[ \t]*([^\r\n\0\x0b\x0c]*?)[ \t]*\r\n")
COMMON_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT"})


def _head_text(data: bytes, max_head: int) -> tuple[str, int, int]:
    """The head as text, where its start line ends, and where its header section ends."""
    if len(data) > max_head:
        raise HttpError(431, f"message head is {len(data)} bytes, more than the limit of {max_head}")
    text = data.decode("latin-1")  # latin-1 decodes every byte: no error possible here
    if not text.strip("\r\n"):
        raise HttpError(400, "empty message head")
    first = text.find("\r\n")
    if first < 0:
        return text, len(text), len(text)
    end = len(text) - 2 if text.endswith("\r\n\r\n") else len(text)  # the blank line is not a header
    return text, first, end


def _headers(text: str, first: int, end: int) -> list[tuple[str, str]]:
    start = first + 2
    if start >= end:
        return []
    if HEADER_SECTION.fullmatch(text, start, end):
        return HEADER_LINE.findall(text, start, end)
    lines = text[start:end].split("\r\n")
    while lines and lines[-1] == "":
        lines.pop()
    return _parse_headers(lines)


def _parse_headers(lines: list[str]) -> list[tuple[str, str]]:
    """The slow, careful path: only for a head the fast match refused, to say why."""
    headers = []
    for number, line in enumerate(lines, start=2):
        if not line:
            raise HttpError(400, f"line {number}: empty line inside the header section")
        if line[0] in " \t":
            raise HttpError(400, f"line {number}: obsolete header line folding is not accepted (RFC 9112 5.2)")
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError(400, f"line {number}: header line {line[:60]!r} has no colon")
        if not TOKEN.fullmatch(name):
            raise HttpError(400, f"line {number}: {name[:60]!r} is not a valid header name")
        if "\r" in value or "\n" in value or "\0" in value:
            raise HttpError(400, f"line {number}: the value of {name[:60]!r} holds a bare CR, LF or NUL (RFC 9110 5.5)")
        if "\x0b" in value or "\x0c" in value:
            raise HttpError(400, f"line {number}: the value of {name[:60]!r} holds a vertical tab or form feed, "
                                 "whitespace that HTTP does not trim and some parsers do", SMUGGLING)
        headers.append((name, value.strip(" \t")))
    return headers


def check_request_line(line: str) -> tuple[str, str, str]:
    """``METHOD target HTTP/1.x`` split in three, or the error a server should answer."""
    if "\n" in line:
        raise HttpError(400, "the request line ends in a bare LF; HTTP/1.1 lines end in CRLF (RFC 9112 2.2)")
    parts = line.split(" ")
    if len(parts) != 3:
        if len(parts) == 2 and parts[0] and parts[1]:
            raise HttpError(400, f"request line {line[:80]!r} has no HTTP version (HTTP/0.9 is not served)", "version")
        raise HttpError(400, f"request line {line[:80]!r} must be 'METHOD target HTTP/1.1'")
    method, target, version = parts
    if method not in COMMON_METHODS and not TOKEN.fullmatch(method):
        raise HttpError(400, f"{method[:30]!r} is not a valid method")
    if not target:
        raise HttpError(400, "empty request target")
    if len(target) > MAX_TARGET:
        raise HttpError(414, f"request target is {len(target)} characters, more than {MAX_TARGET}")
    if not (target.isascii() and target.isprintable()):
        raise HttpError(400, f"request target {target[:60]!r} holds a control or non-ASCII character")
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        if version.startswith("HTTP/"):
            raise HttpError(505, f"{version[:20]} is not supported; use HTTP/1.1 or HTTP/1.0")
        raise HttpError(400, f"{version[:20]!r} is not an HTTP version")
    return method, target, version


BARE_LF = re.compile(rb"(?<!\r)\n")


def check_partial_request(data: bytes | bytearray, max_head: int = MAX_HEAD) -> None:
    """Refuse an unfinished request head that can never become a good one, without waiting for the rest.

    A bare-LF request, an HTTP/0.9 request line, an HTTP/2 preface or an
    over-long first line would otherwise hold the connection until the
    head timeout; a server that can tell at once answers at once.
    """
    if len(data) > max_head:
        raise HttpError(431, f"message head longer than {max_head} bytes")
    first = data.find(b"\n")
    if first < 0:
        if len(data) > MAX_TARGET + 64:
            raise HttpError(414, f"request line longer than {MAX_TARGET + 64} bytes")
        return
    if first == 0 or data[first - 1] != 13:
        raise HttpError(400, "a line ends in a bare LF; HTTP/1.1 lines end in CRLF (RFC 9112 2.2)")
    check_request_line(bytes(data[:first - 1]).decode("latin-1"))
    if BARE_LF.search(data, first + 1):
        raise HttpError(400, "a header line ends in a bare LF; HTTP/1.1 lines end in CRLF (RFC 9112 2.2)")


def parse_request_head(data: bytes, max_head: int = MAX_HEAD, max_headers: int = MAX_HEADERS, max_line: int = MAX_LINE) -> Head:
    """Parse ``METHOD target HTTP/1.x`` and headers (``data`` may end with the blank line)."""
    text, first, end = _head_text(data, max_head)
    method, target, version = check_request_line(text[:first])
    headers = _headers(text, first, end)
    if len(headers) > max_headers:
        raise HttpError(431, f"{len(headers)} header fields, more than the limit of {max_headers}")
    if end - first > max_line and any(len(k) + len(v) + 2 > max_line for k, v in headers):
        name = next(k for k, v in headers if len(k) + len(v) + 2 > max_line)
        raise HttpError(431, f"header {name[:60]!r} is longer than the limit of {max_line} bytes per line")
    head = Head((method, target, version), headers)
    hosts = head.index.get("host", ())
    if len(hosts) > 1 or (version == "HTTP/1.1" and not hosts):
        raise HttpError(400, f"an HTTP/1.1 request needs exactly one Host header (RFC 9112 3.2); this one has {len(hosts)}",
                        SMUGGLING if hosts else "malformed")
    if hosts and not HOST.fullmatch(hosts[0]):
        raise HttpError(400, f"Host {hosts[0][:60]!r} is not host[:port]")
    if "connection" in head.index:
        _check_connection(head, PROTECTED, 400)
    return head


# RFC 3986 host (reg-name, IPv4, or [IP-literal]) with an optional port; empty is allowed (RFC 9112 3.2).
HOST = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=%]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{0,5})?")


def _check_connection(head: Head, protected: frozenset[str], status: int) -> None:
    named = head.tokens("connection") & protected
    if named:
        raise HttpError(status, f"Connection names {', '.join(sorted(named))}, which frames or routes the message: "
                        "a proxy would drop it and the next hop would read the message differently (request smuggling)", SMUGGLING)


def parse_response_head(data: bytes, max_head: int = MAX_HEAD) -> Head:
    text, first, end = _head_text(data, max_head)
    line = text[:first]
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not (parts[1].isascii() and parts[1].isdigit()) or len(parts[1]) != 3:
        raise HttpError(502, f"status line {line[:80]!r} is not 'HTTP/1.x NNN reason'")
    reason = parts[2] if len(parts) == 3 else ""
    head = Head((parts[0], parts[1], reason), _headers(text, first, end))
    if "connection" in head.index:
        _check_connection(head, PROTECTED, 502)
    return head


# Body framing (RFC 9112 6.3): what follows the head and how to find its end.
NONE = "none"
LENGTH = "length"
CHUNKED = "chunked"
UNTIL_CLOSE = "close"


def request_framing(head: Head) -> tuple[str, int]:
    index = head.index
    if "transfer-encoding" not in index and "content-length" not in index:
        return NONE, 0  # most requests (GET): decided without looking further
    te_values = head.get_all("transfer-encoding")
    if te_values:
        if head.get("content-length") is not None:
            raise HttpError(400, "both Transfer-Encoding and Content-Length: refusing a possible request smuggling", SMUGGLING)
        codings = [t.strip(OWS).lower() for v in te_values for t in v.split(",")]
        if head.version != "HTTP/1.1":
            raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1: treat as faulty framing)", SMUGGLING)
        if codings != ["chunked"]:
            # "chunked, chunked", "gzip, chunked", "chunked " + junk: each a known way to make two parsers disagree.
            raise HttpError(501 if codings[-1] == "chunked" and all(TOKEN.fullmatch(c) for c in codings) else 400,
                            f"Transfer-Encoding {', '.join(te_values)[:60]!r}: only a single 'chunked' is accepted",
                            SMUGGLING)
        return CHUNKED, 0
    return _length_framing(head, 400) or (NONE, 0)


def response_framing(head: Head, request_method: str) -> tuple[str, int]:
    code = head.start[1]
    if request_method == "HEAD" or code[0] == "1" or code == "204" or code == "304":
        return NONE, 0
    index = head.index
    if "transfer-encoding" in index and "chunked" in head.tokens("transfer-encoding"):
        return CHUNKED, 0
    lengths = index.get("content-length")
    if lengths is not None and len(lengths) == 1 and lengths[0].isascii() and lengths[0].isdigit():
        n = int(lengths[0])  # the usual answer, decided without the checks below
        return (LENGTH, n) if n else (NONE, 0)
    return _length_framing(head, 502) or (UNTIL_CLOSE, 0)


def _length_framing(head: Head, error_status: int) -> tuple[str, int] | None:
    given = head.get_all("content-length")
    if not given:
        return None
    values = {v.strip(OWS) for v in given}
    if len(values) > 1:
        raise HttpError(error_status, f"conflicting Content-Length values {sorted(values)}", SMUGGLING)
    if len(given) > 1 and error_status == 400:
        # RFC 9110 8.6 allows merging equal copies, but the request would travel on with both,
        # and the next parser may not merge: refused, as a request cannot be forwarded half-fixed.
        raise HttpError(400, f"{len(given)} Content-Length headers; send one", SMUGGLING)
    value = values.pop()
    if not (value.isascii() and value.isdigit()):  # str.isdigit() alone accepts '²'
        raise HttpError(error_status, f"Content-Length {value[:20]!r} is not a number", SMUGGLING)
    if len(value) > MAX_LENGTH_DIGITS:
        raise HttpError(error_status if error_status != 400 else 413, f"Content-Length {value[:24]} is beyond any body this server takes")
    n = int(value)
    return (LENGTH, n) if n else (NONE, 0)


# The headers a proxy must act on in an answer: the hop-by-hop ones and the
# body's length. Any other header is passed through untouched.
# Matched in the lower-cased head (cheaper than a case-insensitive regex), each
# line starting after the \n of the line before.
_WATCHED = re.compile(r"\n(" + "|".join(sorted(HOP_BY_HOP | {"content-length"})) + r"):[ \t]*([^\r\n]*?)[ \t]*\r")


def plain_response(data: bytes, request_method: str) -> tuple[int, str, int, bool] | None:
    """Status, framing, length and keep-alive of a plain answer, without building a ``Head``.

    ``data`` is the answer's head, blank line included. "Plain" means a
    well-formed head whose only header that matters to a proxy is at most
    one Content-Length: no Connection, Transfer-Encoding or other hop-by-hop
    header. Almost every answer is plain, and this is the balancer's hot
    path; for anything else this returns None and the caller takes the full
    ``parse_response_head`` road, which also explains what is wrong.
    """
    if len(data) > MAX_HEAD:
        return None
    text = data.decode("latin-1")
    first = text.find("\r\n")
    end = len(text) - 2
    if first < 0 or not text.endswith("\r\n\r\n"):
        return None
    version, _, rest = text[:first].partition(" ")
    code = rest[:3]
    if (version != "HTTP/1.1" and version != "HTTP/1.0") or len(rest) < 3 or not (code.isascii() and code.isdigit()) \
            or (len(rest) > 3 and rest[3] != " "):
        return None
    if first + 2 < end and not HEADER_SECTION.fullmatch(text, first + 2, end):
        return None
    watched = _WATCHED.findall(text.lower(), first, end)
    length = -1
    if watched:
        if len(watched) > 1 or watched[0][0] != "content-length":
            return None
        value = watched[0][1]
        if not (value.isascii() and value.isdigit()) or len(value) > MAX_LENGTH_DIGITS:
            return None
        length = int(value)
    keep = version == "HTTP/1.1"
    if request_method == "HEAD" or code[0] == "1" or code == "204" or code == "304" or length == 0:
        return int(code), NONE, 0, keep
    if length < 0:
        return int(code), UNTIL_CLOSE, 0, False
    return int(code), LENGTH, length, keep


CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})((?:[ \t]*;[^\r\n\0]*)?)")
MAX_CHUNK_LINE = 4096
MAX_TRAILERS = MAX_HEADERS


def dechunk(data: bytes) -> bytes:
    """The payload of a whole chunked body (what a cache stores); trailers are dropped. ``HttpError`` if malformed or cut."""
    out = bytearray()
    at = 0
    while True:
        end = data.find(b"\r\n", at)
        if end < 0:
            raise HttpError(502, "chunked body cut short in a chunk size line")
        size_text = data[at:end].split(b";", 1)[0]
        if not 1 <= len(size_text) <= 16 or not all(c in b"0123456789abcdefABCDEF" for c in size_text):
            raise HttpError(502, f"bad chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        at = end + 2
        if size == 0:
            return bytes(out)
        if len(data) < at + size + 2 or data[at + size:at + size + 2] != b"\r\n":
            raise HttpError(502, "chunk data cut short or not followed by CRLF")
        out += data[at:at + size]
        at += size + 2


class ChunkedScanner:
    """Finds where a chunked body ends, passing its bytes through unchanged.

    ``feed(data)`` returns how many bytes of ``data`` belong to the body; once
    ``done`` is true the rest belongs to the next message. Strict on purpose
    (RFC 9112 7.1): a size is 1 to 16 hex digits (no sign, no ``0x``, no
    underscore, no space before it), every line ends in CRLF, chunk data is
    followed by exactly CRLF, and a trailer line is a header line. Where two
    parsers read a chunked body differently, one of them can be fed a
    request the other never saw.
    """

    def __init__(self) -> None:
        self.done = False
        self._state = "size"
        self._line = bytearray()
        self._remaining = 0
        self._trailers = 0
        self.size = 0  # body bytes (chunk data) seen so far

    def feed(self, data: bytes) -> int:
        i = 0
        n = len(data)
        while i < n and not self.done:
            if self._state == "data":
                take = min(self._remaining, n - i)
                i += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = "data-crlf"
                continue
            nl = data.find(b"\n", i)
            if nl < 0:
                self._line += data[i:]
                if len(self._line) > MAX_CHUNK_LINE:
                    raise HttpError(400, f"chunk size or trailer line longer than {MAX_CHUNK_LINE} bytes")
                return n
            self._line += data[i:nl]
            i = nl + 1
            if not self._line.endswith(b"\r"):
                raise HttpError(400, "a chunk line ends in a bare LF (RFC 9112 7.1: CRLF)", SMUGGLING)
            line = bytes(self._line[:-1])
            self._line.clear()
            if len(line) > MAX_CHUNK_LINE:
                raise HttpError(400, f"chunk size or trailer line longer than {MAX_CHUNK_LINE} bytes")
            self._line_done(line)
        return i

    def _line_done(self, line: bytes) -> None:
        if self._state == "size":
            m = CHUNK_SIZE.fullmatch(line)
            if m is None:
                raise HttpError(400, f"bad chunk size line {line[:24]!r} (1-16 hex digits, optional ';extension')", SMUGGLING)
            size = int(m.group(1), 16)
            if size == 0:
                self._state = "trailer"
            else:
                self._remaining = size
                self.size += size
                self._state = "data"
        elif self._state == "data-crlf":
            if line:
                raise HttpError(400, "chunk data not followed by CRLF (the chunk is longer than its size says)", SMUGGLING)
            self._state = "size"
        elif self._state == "trailer":
            if not line:
                self.done = True
                return
            self._trailers += 1
            text = line.decode("latin-1")
            name, sep, value = text.partition(":")
            if not sep or not TOKEN.fullmatch(name) or "\r" in value or "\0" in value:
                raise HttpError(400, f"trailer line {text[:40]!r} is not 'name: value'", SMUGGLING)
            if self._trailers > MAX_TRAILERS:
                raise HttpError(431, f"more than {MAX_TRAILERS} trailer fields")


def render_head(start: tuple[str, str, str], headers: list[tuple[str, str]]) -> bytes:
    lines = [" ".join(start)] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def render_response(status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None, keep_alive: bool = True) -> bytes:
    hdrs = list(headers or [])
    hdrs.append(("Content-Length", str(len(body))))
    if not keep_alive:
        hdrs.append(("Connection", "close"))
    return render_head(("HTTP/1.1", str(status), REASONS.get(status, "Unknown")), hdrs) + body


def error_response(status: int, message: str, headers: list[tuple[str, str]] | None = None, keep_alive: bool = False) -> bytes:
    """A short plain-text error page that says what went wrong, for curl users."""
    body = f"{status} {REASONS.get(status, '')}: {message}\n".encode("utf-8", "replace")
    hdrs = [("Content-Type", "text/plain; charset=utf-8")] + list(headers or [])
    return render_response(status, body, hdrs, keep_alive)


def forward_headers(head: Head, drop: frozenset[str] = HOP_BY_HOP) -> list[tuple[str, str]]:
    """Headers to pass on: minus hop-by-hop ones and any the Connection header names."""
    named = head.tokens("connection")
    return [(k, v) for k, v in head.headers if k.lower() not in drop and k.lower() not in named]
