"""How an intermediary rewrites the messages it passes on (RFC 9110 7.6): pure, no I/O.

Hop-by-hop headers (``Connection`` and the headers it names, ``Keep-Alive``,
``TE``, ``Transfer-Encoding``, ``Upgrade`` ...) end at each hop; what a
gateway adds is ``Via`` (it must, on requests and answers alike) and
``X-Forwarded-For``. The fast path keeps the received bytes and appends
lines, because most heads carry no hop-by-hop header at all.
"""
from __future__ import annotations

from lab.core.http1 import HOP_BY_HOP, Head, forward_headers, render_head


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
# X-Forwarded-Host is a gateway's to write, not a client's: dropped unless trusted (ClientLimits.trust_forwarded_host),
# because an origin that builds links from it and a cache that does not key on it serve one client's host to all.
REPLACED = frozenset({"x-forwarded-for", "expect", "x-forwarded-host"})
REPLACED_TRUSTING_HOST = REPLACED - {"x-forwarded-host"}


def forward_tail(client_ip: str, via: str) -> bytes:
    """What ``forwarded`` appends to a plain request (and the blank line)."""
    return f"X-Forwarded-For: {client_ip}\r\nVia: 1.1 {via}\r\nConnection: keep-alive\r\n\r\n".encode("latin-1")


def forwarded(head: Head, raw: bytes, client_ip: str, via: str, tail: bytes = b"", chunked: bool = False,
              replaced: frozenset[str] = REPLACED) -> bytes:
    """The request as it goes to the server: X-Forwarded-For extended, Via added, kept alive.

    ``raw`` is the head as received, blank line included. ``tail`` is
    ``forward_tail(client_ip, via)``, computed once per client connection: a
    plain HTTP/1.1 request (no hop-by-hop header, no X-Forwarded-For or
    Expect or X-Forwarded-Host) is then forwarded as its own bytes plus that tail. ``chunked``:
    the body follows chunked, as it came (Transfer-Encoding is hop-by-hop,
    so it is dropped with the others and said again here).
    """
    index = head.index
    if tail and head.start[2] == "HTTP/1.1" and HOP_BY_HOP.isdisjoint(index) and replaced.isdisjoint(index):
        return raw[:-2] + tail
    xff = head.get("X-Forwarded-For")
    added = [("X-Forwarded-For", f"{xff}, {client_ip}" if xff else client_ip), ("Via", f"1.1 {via}"), ("Connection", "keep-alive")]
    if chunked:
        added.append(("Transfer-Encoding", "chunked"))
    start = None if head.version == "HTTP/1.1" else (head.method, head.target, "HTTP/1.1")
    return rewrite(head, raw[:-2], added, start, replaced)

