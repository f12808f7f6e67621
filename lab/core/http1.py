"""HTTP/1.1 message heads and body framing, without sockets (RFC 9112).

The proxies, the origin and the load generator all speak HTTP/1.1 over
asyncio streams; this module is the part that needs no I/O: parse a head,
say how its body is framed, and find where a chunked body ends. A malformed
message raises ``HttpError`` carrying the status a server should answer
(400, 414, 431, 501, 505) and a sentence saying exactly what was wrong.
"""
from __future__ import annotations

import re

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 5.6.2 token
MAX_HEAD = 64 * 1024  # nginx large_client_header_buffers is 4 x 8k; HAProxy tune.bufsize 16k
# RFC 9110 7.6.1: meaningful for one connection only; a proxy must not forward them.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}
)
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
REASONS = {
    200: "OK", 204: "No Content", 304: "Not Modified", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required", 414: "URI Too Long",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """A message we cannot accept; ``status`` is what to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
        return {t.strip().lower() for v in self.get_all(name) for t in v.split(",") if t.strip()}

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
HEADER_SECTION = re.compile(rf"(?:{_TCHAR}+:[^\r\n\0]*\r\n)*")
HEADER_LINE = re.compile(rf"({_TCHAR}+):[ \t]*([^\r\n\0]*?)[ \t]*\r\n")
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
        headers.append((name, value.strip(" \t")))
    return headers


def parse_request_head(data: bytes, max_head: int = MAX_HEAD) -> Head:
    """Parse ``METHOD target HTTP/1.x`` and headers (``data`` may end with the blank line)."""
    text, first, end = _head_text(data, max_head)
    line = text[:first]
    parts = line.split(" ")
    if len(parts) != 3:
        raise HttpError(400, f"request line {line[:80]!r} must be 'METHOD target HTTP/1.1'")
    method, target, version = parts
    if method not in COMMON_METHODS and not TOKEN.fullmatch(method):
        raise HttpError(400, f"{method[:30]!r} is not a valid method")
    if not target:
        raise HttpError(400, "empty request target")
    if not (target.isascii() and target.isprintable()):
        raise HttpError(400, f"request target {target[:60]!r} holds a control or non-ASCII character")
    if len(target) > 8192:
        raise HttpError(414, f"request target is {len(target)} characters, more than 8192")
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        if version.startswith("HTTP/"):
            raise HttpError(505, f"{version} is not supported; use HTTP/1.1 or HTTP/1.0")
        raise HttpError(400, f"{version[:20]!r} is not an HTTP version")
    head = Head((method, target, version), _headers(text, first, end))
    if version == "HTTP/1.1" and len(head.index.get("host", ())) != 1:
        raise HttpError(400, "an HTTP/1.1 request needs exactly one Host header (RFC 9112 3.2)")
    return head


def parse_response_head(data: bytes, max_head: int = MAX_HEAD) -> Head:
    text, first, end = _head_text(data, max_head)
    line = text[:first]
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not (parts[1].isascii() and parts[1].isdigit()) or len(parts[1]) != 3:
        raise HttpError(502, f"status line {line[:80]!r} is not 'HTTP/1.x NNN reason'")
    reason = parts[2] if len(parts) == 3 else ""
    return Head((parts[0], parts[1], reason), _headers(text, first, end))


# Body framing (RFC 9112 6.3): what follows the head and how to find its end.
NONE = "none"
LENGTH = "length"
CHUNKED = "chunked"
UNTIL_CLOSE = "close"


def request_framing(head: Head) -> tuple[str, int]:
    index = head.index
    if "transfer-encoding" not in index and "content-length" not in index:
        return NONE, 0  # most requests (GET): decided without looking further
    te = head.tokens("transfer-encoding")
    if te:
        if te != {"chunked"}:
            raise HttpError(501, f"transfer-encoding {', '.join(sorted(te))} is not supported (only chunked)")
        if head.get("content-length") is not None:
            raise HttpError(400, "both Transfer-Encoding and Content-Length: refusing a possible request smuggling")
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
    values = {v.strip() for v in head.get_all("content-length")}
    if not values:
        return None
    if len(values) > 1:
        raise HttpError(error_status, f"conflicting Content-Length values {sorted(values)}")
    value = values.pop()
    if not (value.isascii() and value.isdigit()):  # str.isdigit() alone accepts '²'
        raise HttpError(error_status, f"Content-Length {value[:20]!r} is not a number")
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
        if not (value.isascii() and value.isdigit()):
            return None
        length = int(value)
    keep = version == "HTTP/1.1"
    if request_method == "HEAD" or code[0] == "1" or code == "204" or code == "304" or length == 0:
        return int(code), NONE, 0, keep
    if length < 0:
        return int(code), UNTIL_CLOSE, 0, False
    return int(code), LENGTH, length, keep


class ChunkedScanner:
    """Finds where a chunked body ends, passing its bytes through unchanged.

    ``feed(data)`` returns how many bytes of ``data`` belong to the body; once
    ``done`` is true the rest belongs to the next message.
    """

    def __init__(self) -> None:
        self.done = False
        self._state = "size"
        self._line = bytearray()
        self._remaining = 0

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
                if len(self._line) > 4096:
                    raise HttpError(400, "chunk size or trailer line longer than 4096 bytes")
                return n
            self._line += data[i:nl]
            i = nl + 1
            line = bytes(self._line).rstrip(b"\r")
            self._line.clear()
            self._line_done(line)
        return i

    def _line_done(self, line: bytes) -> None:
        if self._state == "size":
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpError(400, f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                self._state = "trailer"
            else:
                self._remaining = size
                self._state = "data"
        elif self._state == "data-crlf":
            if line:
                raise HttpError(400, "chunk data not followed by CRLF")
            self._state = "size"
        elif self._state == "trailer" and not line:
            self.done = True


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
