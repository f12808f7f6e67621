"""A corpus of hostile and malformed HTTP/1.1 requests, for gateways and proxies (data only, no I/O).

Each shape is what an attacker on the lab's network (or a broken client)
sends, raw, on one connection: request smuggling in its known forms
(CL.TE, TE.CL, TE.TE obfuscations, ``Connection`` naming a framing
header), framing edge cases, line-ending and whitespace tricks, oversized
heads, slow clients, other protocols' first bytes, and pipelining with a
smuggled tail.

Every shape names its legitimate request ``/corpus/PREFIX/NAME`` and any
request hidden inside it ``/smuggled/PREFIX/NAME``, so the origins' own
logs (``request_parsed``) tell exactly which requests reached them and
whether a hidden one ever did. ``expect`` says what a careful gateway
does with it: ``refuse`` (an error status and a close), ``serve`` (it is
valid, however odd), or ``either`` (the RFCs allow both).
``lab.packets.hostile`` sends them; ``halab hostile`` runs them against
halab's gateway and HAProxy side by side.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

Build = Callable[[str, str], bytes]  # (legitimate path, smuggled path) -> the bytes to send


@dataclass(frozen=True)
class Shape:
    name: str
    category: str
    build: Build
    expect: str  # refuse | serve | either
    note: str
    then: bytes = b""  # sent after ``pause`` seconds (a slow body, a second request)
    pause: float = 0.0
    trickle: float = 0.0  # > 0: send one byte every this many seconds (slowloris)

    def data(self, prefix: str) -> bytes:
        return self.build(f"/corpus/{prefix}/{self.name}", f"/smuggled/{prefix}/{self.name}")


def _inner(smuggled: str) -> bytes:
    return f"GET {smuggled} HTTP/1.1\r\nHost: lab\r\n\r\n".encode()


def _post(path: str, headers: list[str], body: bytes, version: str = "HTTP/1.1") -> bytes:
    head = f"POST {path} {version}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    return head.encode("latin-1") + body


def _chunked_hiding(smuggled: str) -> bytes:
    """A chunked body that ends early, followed by a smuggled request: what a CL-reader forwards whole."""
    return b"0\r\n\r\n" + _inner(smuggled)


def _cl(body: bytes) -> str:
    return f"Content-Length: {len(body)}"


def _te_cl(te_line: str) -> Build:
    """A TE.CL / CL.TE pair: one parser takes the chunked end, the other the length."""
    def build(p: str, s: str) -> bytes:
        body = _chunked_hiding(s)
        return _post(p, ["Host: lab", te_line, _cl(body)], body)
    return build


def _te_alone(te_line: str) -> Build:
    """An obfuscated Transfer-Encoding alone: a parser that ignores it reads no body, and the body is a request."""
    def build(p: str, s: str) -> bytes:
        return _post(p, ["Host: lab", te_line], _chunked_hiding(s))
    return build


def _cl_value(value: str) -> Build:
    def build(p: str, s: str) -> bytes:
        return _post(p, ["Host: lab", f"Content-Length: {value}"], _inner(s))
    return build


def _connection(named: str) -> Build:
    def build(p: str, s: str) -> bytes:
        body = _inner(s)
        return _post(p, ["Host: lab", f"Connection: {named}", _cl(body)], body)
    return build


def _get(headers: list[str], path_line: str = "GET {p} HTTP/1.1") -> Build:
    def build(p: str, s: str) -> bytes:
        return (path_line.format(p=p, s=s) + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode("latin-1")
    return build


def _chunks(raw: bytes) -> Build:
    def build(p: str, s: str) -> bytes:
        return _post(p, ["Host: lab", "Transfer-Encoding: chunked"], raw.replace(b"{S}", _inner(s)))
    return build


def _raw(data: bytes) -> Build:
    return lambda p, s: data.replace(b"{P}", p.encode()).replace(b"{S}", s.encode())


SHAPES: tuple[Shape, ...] = (
    # --- CL / TE smuggling -------------------------------------------------------------------
    Shape("cl_te", "smuggling", _te_cl("Transfer-Encoding: chunked"), "refuse", "Content-Length and chunked together (CL.TE / TE.CL)"),
    Shape("te_space_before_colon", "smuggling", _te_cl("Transfer-Encoding : chunked"), "refuse", "a space before the colon"),
    Shape("te_tab_value", "smuggling", _te_cl("Transfer-Encoding:\tchunked"), "refuse", "a tab as whitespace, with Content-Length"),
    Shape("te_xchunked", "smuggling", _te_cl("Transfer-Encoding: xchunked"), "refuse", "an unknown coding next to Content-Length"),
    Shape("te_chunked_identity", "smuggling", _te_cl("Transfer-Encoding: chunked, identity"), "refuse", "chunked not last"),
    Shape("te_identity_chunked", "smuggling", _te_alone("Transfer-Encoding: identity, chunked"), "refuse", "identity is no coding any more"),
    Shape("te_chunked_twice", "smuggling", _te_alone("Transfer-Encoding: chunked, chunked"), "refuse", "chunked applied twice"),
    Shape("te_two_headers", "smuggling", lambda p, s: _post(p, ["Host: lab", "Transfer-Encoding: chunked", "Transfer-Encoding: identity"],
                                                           _chunked_hiding(s)), "refuse", "two Transfer-Encoding headers"),
    Shape("te_uppercase", "smuggling", _te_alone("Transfer-Encoding: CHUNKED"), "either", "coding names are case-insensitive"),
    Shape("te_obs_fold", "smuggling", _te_cl("Transfer-Encoding:\r\n chunked"), "refuse", "the value folded onto the next line"),
    Shape("te_leading_space_line", "smuggling", _te_cl(" Transfer-Encoding: chunked"), "refuse", "a header line starting with a space"),
    Shape("te_vertical_tab", "smuggling", _te_cl("Transfer-Encoding: \x0bchunked"), "refuse", "a vertical tab before the value"),
    Shape("te_nul", "smuggling", _te_cl("Transfer-Encoding: chunked\x00"), "refuse", "a NUL after the value"),
    Shape("te_quoted", "smuggling", _te_cl('Transfer-Encoding: "chunked"'), "refuse", "the coding in quotes"),
    Shape("te_gzip_chunked", "smuggling", _te_alone("Transfer-Encoding: gzip, chunked"), "either", "valid, but a gateway may not support gzip"),
    Shape("te_in_http10", "smuggling", lambda p, s: _post(p, ["Host: lab", "Transfer-Encoding: chunked"], _chunked_hiding(s), "HTTP/1.0"),
          "refuse", "chunked does not exist in HTTP/1.0 (RFC 9112 6.1)"),
    Shape("te_newline_name", "smuggling", _te_cl("X: y\nTransfer-Encoding: chunked"), "refuse", "a bare LF hides a header in a value"),
    Shape("cl_conflict", "smuggling", lambda p, s: _post(p, ["Host: lab", "Content-Length: 0", f"Content-Length: {len(_inner(s))}"], _inner(s)),
          "refuse", "two different Content-Length values"),
    Shape("cl_same_twice", "framing", lambda p, s: _post(p, ["Host: lab", "Content-Length: 3", "Content-Length: 3"], b"abc"),
          "either", "the same value twice may be merged (RFC 9110 8.6)"),
    Shape("cl_list", "smuggling", _cl_value("3, 3"), "either", "a list of equal values"),
    Shape("cl_plus", "smuggling", _cl_value("+5"), "refuse", "a sign"),
    Shape("cl_negative", "smuggling", _cl_value("-1"), "refuse", "a negative length"),
    Shape("cl_hex", "smuggling", _cl_value("0x10"), "refuse", "a hex length"),
    Shape("cl_inner_space", "smuggling", _cl_value("1 0"), "refuse", "a space inside the number"),
    Shape("cl_superscript", "smuggling", _cl_value("\xb2"), "refuse", "a digit that is not ASCII"),
    Shape("cl_space_before_colon", "smuggling", lambda p, s: _post(p, ["Host: lab", f"Content-Length : {len(_inner(s))}"], _inner(s)),
          "refuse", "a space before the colon"),
    Shape("cl_huge", "framing", _cl_value("18446744073709551621"), "refuse", "2^64 + 5: an overflow in C"),
    Shape("cl_leading_zeros", "framing", lambda p, s: _post(p, ["Host: lab", "Content-Length: 0003", "Connection: close"], b"abc"),
          "serve", "leading zeros are still a number"),
    Shape("connection_content_length", "smuggling", _connection("Content-Length"), "refuse", "Connection names Content-Length"),
    Shape("connection_transfer_encoding", "smuggling", _connection("Transfer-Encoding"), "refuse", "Connection names Transfer-Encoding"),
    Shape("connection_host", "smuggling", _connection("Host"), "refuse", "Connection names Host"),
    Shape("connection_close_cl", "smuggling", _connection("close, Content-Length"), "refuse", "Content-Length hidden behind close"),
    # --- chunked bodies -----------------------------------------------------------------------
    Shape("chunk_0x_size", "chunked", _chunks(b"0x5\r\nhello\r\n0\r\n\r\n"), "refuse", "a 0x prefix (Python's int() takes it)"),
    Shape("chunk_negative", "chunked", _chunks(b"-1\r\n{S}0\r\n\r\n"), "refuse", "a negative size"),
    Shape("chunk_underscore", "chunked", _chunks(b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n"), "refuse", "1_0 (Python's int() reads 16)"),
    Shape("chunk_space_before_size", "chunked", _chunks(b" 5\r\nhello\r\n0\r\n\r\n"), "refuse", "a space before the size"),
    Shape("chunk_bare_lf_size", "chunked", _chunks(b"5\nhello\r\n0\r\n\r\n"), "refuse", "a size line ending in LF"),
    Shape("chunk_ext_bare_lf", "chunked", _chunks(b"5;a\nhello\r\n0\r\n\r\n"), "refuse", "an extension ending in LF"),
    Shape("chunk_too_long", "chunked", _chunks(b"3\r\nhello\r\n0\r\n\r\n"), "refuse", "more data than the size says"),
    Shape("chunk_huge_size", "chunked", _chunks(b"fffffffffffffffff1\r\nx\r\n"), "refuse", "a size past 64 bits"),
    Shape("chunk_missing_crlf", "chunked", _chunks(b"5\r\nhello0\r\n\r\n{S}"), "refuse", "no CRLF after the data"),
    Shape("chunk_hidden_request", "chunked", _chunks(b"0\r\n\r\n{S}"), "either",
          "a valid empty body, then a pipelined request: a gateway may serve both (as requests it routed)"),
    Shape("chunk_valid_ext_trailer", "chunked", _chunks(b"5;name=value\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"), "either",
          "valid extensions and a trailer"),
    Shape("chunk_bad_trailer", "chunked", _chunks(b"0\r\nno colon here\r\n\r\n"), "refuse", "a trailer line that is no header"),
    # --- line endings and whitespace ---------------------------------------------------------------
    Shape("bare_lf_everywhere", "whitespace", _raw(b"GET {P} HTTP/1.1\nHost: lab\n\n"), "either", "LF only (RFC 9112 2.2: MAY accept)"),
    Shape("bare_lf_in_headers", "whitespace", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\nX: y\r\n\r\n"), "either", "one LF-only line"),
    Shape("bare_cr_in_value", "whitespace", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\r\nX: a\rb\r\n\r\n"), "refuse", "a bare CR in a value"),
    Shape("nul_in_value", "whitespace", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\r\nX: a\x00b\r\n\r\n"), "refuse", "a NUL in a value"),
    Shape("space_before_colon", "whitespace", _raw(b"GET {P} HTTP/1.1\r\nHost : lab\r\n\r\n"), "refuse", "RFC 9112 5.1: MUST reject"),
    Shape("obs_fold", "whitespace", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\r\nX: a\r\n b\r\n\r\n"), "either", "obsolete line folding"),
    Shape("space_in_name", "whitespace", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\r\nX Y: z\r\n\r\n"), "refuse", "a space inside a name"),
    Shape("double_space_request_line", "whitespace", _raw(b"GET  {P} HTTP/1.1\r\nHost: lab\r\n\r\n"), "refuse", "two spaces"),
    Shape("tab_request_line", "whitespace", _raw(b"GET\t{P} HTTP/1.1\r\nHost: lab\r\n\r\n"), "refuse", "a tab between method and target"),
    Shape("leading_crlf", "whitespace", _raw(b"\r\nGET {P} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"), "serve",
          "RFC 9112 2.2: an empty line before a request is ignored"),
    Shape("lowercase_version", "whitespace", _raw(b"GET {P} http/1.1\r\nHost: lab\r\n\r\n"), "refuse", "HTTP-name is case-sensitive"),
    # --- hosts, targets, methods, versions ----------------------------------------------------------
    Shape("no_host", "routing", _raw(b"GET {P} HTTP/1.1\r\n\r\n"), "refuse", "HTTP/1.1 needs Host (RFC 9112 3.2)"),
    Shape("two_hosts", "routing", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\r\nHost: evil\r\n\r\n"), "refuse", "two Host headers"),
    Shape("host_userinfo", "routing", _raw(b"GET {P} HTTP/1.1\r\nHost: lab@evil\r\n\r\n"), "refuse", "userinfo in Host"),
    Shape("http10_no_host", "routing", _raw(b"GET {P} HTTP/1.0\r\n\r\n"), "serve", "HTTP/1.0 without Host is valid"),
    Shape("absolute_form", "routing", _raw(b"GET http://lab{P} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"), "either",
          "absolute-form at a gateway"),
    Shape("connect_method", "routing", _raw(b"CONNECT lab:443 HTTP/1.1\r\nHost: lab:443\r\n\r\n"), "refuse", "a tunnel request at a gateway"),
    Shape("bad_method", "routing", _raw(b"G@T {P} HTTP/1.1\r\nHost: lab\r\n\r\n"), "refuse", "'@' is no token character"),
    Shape("version_1_2", "version", _raw(b"GET {P} HTTP/1.2\r\nHost: lab\r\n\r\n"), "either", "a newer minor version (may be served as 1.1)"),
    Shape("version_2", "version", _raw(b"GET {P} HTTP/2.0\r\nHost: lab\r\n\r\n"), "refuse", "HTTP/2 in an HTTP/1 request line"),
    Shape("http09", "version", _raw(b"GET {P}\r\n"), "refuse", "HTTP/0.9: no version, no headers"),
    Shape("http2_preface", "version", _raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "refuse", "an HTTP/2 client speaking first"),
    Shape("tls_client_hello", "version", _raw(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(32) + b"\r\n\r\n"), "refuse",
          "TLS sent to a plain-HTTP port"),
    Shape("expect_unknown", "expect", lambda p, s: _post(p, ["Host: lab", "Expect: teapot", "Content-Length: 1"], b"x"), "either",
          "an expectation nobody meets (417, or ignored)"),
    Shape("expect_100", "expect", lambda p, s: _post(p, ["Host: lab", "Expect: 100-continue", "Content-Length: 5", "Connection: close"],
                                                   b"hello"), "serve", "100-continue with the body right behind"),
    Shape("upgrade_h2c", "version", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\r\nConnection: Upgrade, HTTP2-Settings, close\r\n"
                                         b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"), "serve", "h2c upgrade: ignored, served as 1.1"),
    # --- sizes ---------------------------------------------------------------------------------------
    Shape("huge_header", "size", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"), "refuse", "one 20 kB header"),
    Shape("many_headers", "size", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n"),
          "refuse", "200 headers (HAProxy's limit is 101)"),
    Shape("long_target", "size", lambda p, s: f"GET {p}?{'a' * 10000} HTTP/1.1\r\nHost: lab\r\n\r\n".encode(), "refuse", "a 10 kB target"),
    Shape("endless_head", "size", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\r\nX: " + b"a" * 70000), "refuse", "a head that never ends"),
    # --- slow clients --------------------------------------------------------------------------------
    Shape("slowloris", "slow", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\r\nX-a: " + b"b" * 200), "refuse",
          "one byte every 0.1 s: cut at the head timeout", trickle=0.1),
    Shape("slow_body", "slow", lambda p, s: _post(p, ["Host: lab", "Content-Length: 100"], b"0123456789"), "refuse",
          "10 of 100 body bytes, then silence"),
    Shape("silent", "slow", _raw(b""), "either", "connects and says nothing (a quiet close is enough)"),
    Shape("half_head", "slow", _raw(b"GET {P} HTTP/1.1\r\nHost: la"), "refuse", "half a head, then silence"),
    Shape("chunk_never_ends", "slow", _chunks(b"5\r\nhello\r\n"), "refuse", "a chunked body with no last chunk"),
    # --- pipelining ----------------------------------------------------------------------------------
    Shape("pipeline_two", "pipelining", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\r\n\r\nGET {P} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"),
          "serve", "two requests back to back"),
    Shape("pipeline_smuggled_tail", "pipelining", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\r\n\r\nGET {S} HTTP/1.1\r\nHost: lab\r\nX: "),
          "either", "a valid request, then an unfinished one that must never be forwarded"),
    Shape("pipeline_after_body", "pipelining", lambda p, s: _post(p, ["Host: lab", "Content-Length: 5"], b"hello") +
          f"GET {p} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n".encode(), "serve", "a POST with its body, then a GET"),
    Shape("get_with_body", "pipelining", lambda p, s: f"GET {p} HTTP/1.1\r\nHost: lab\r\n{_cl(_inner(s))}\r\nConnection: close\r\n\r\n".encode()
          + _inner(s), "either", "a GET whose body looks like a request: forwarded as a body, or refused"),
    Shape("pipeline_bad_second", "pipelining", _raw(b"GET {P} HTTP/1.1\r\nHost: lab\r\n\r\nGET {S} HTTP/1.1\r\nHost: lab\r\n"
                                                   b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
          "either", "a good request, then a smuggling one: only the first may be forwarded"),
)

NAMES = {s.name: s for s in SHAPES}
assert len(NAMES) == len(SHAPES), "shape names must be unique"

SERVE_COUNTS = {"pipeline_two": 2, "pipeline_after_body": 2}  # shapes that are more than one valid request


def requests_in(parsed: list[str], prefix: str) -> "Counter[str]":
    """Targets of this run's corpus requests, from the origins' ``request_parsed`` targets (absolute-form made origin-form)."""
    out: Counter[str] = Counter()
    for target in parsed:
        path = target
        if "://" in path:  # absolute-form: keep the path
            rest = path.split("://", 1)[1]
            path = rest[rest.find("/"):] if "/" in rest else "/"
        path = path.split("?", 1)[0]
        if path.startswith((f"/corpus/{prefix}/", f"/smuggled/{prefix}/")):
            out[path] += 1
    return out


def judge(results: list[dict[str, Any]], parsed: "Counter[str]", routed: "Counter[str] | None", bound: float) -> list[str]:
    """What a careful gateway got wrong on this corpus run; empty when nothing.

    ``parsed``: requests the origins parsed; ``routed``: requests the gateway
    says it routed (None for a gateway that does not say). ``bound``: seconds
    within which every shape must have had an answer or a close.
    """
    problems = []
    for r in results:
        name, statuses = r["name"], r["statuses"]
        seen = [t for t in (r["first_byte"], r["closed"]) if t is not None]
        if not seen or min(seen) > bound:
            problems.append(f"{name}: no answer and no close within {bound:g} s")
        if r["expect"] == "refuse" and not (statuses and statuses[-1] >= 400 and r["closed"] is not None):
            problems.append(f"{name}: should be refused with an error and a close; got {statuses or 'no answer'}"
                            f"{'' if r['closed'] is not None else ', connection left open'}")
        if r["expect"] == "serve" and (len(statuses) != SERVE_COUNTS.get(name, 1) or any(s >= 400 for s in statuses)):
            problems.append(f"{name}: valid, should be served; got {statuses or 'no answer'}")
    if routed is not None:
        for path, count in sorted((parsed - routed).items()):
            problems.append(f"an origin parsed {path} {count} time(s) more than the gateway routed it: request smuggling")
    return problems
