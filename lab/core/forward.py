"""What a forward proxy decides about a request before it forwards anything (pure, no I/O).

A client that chose a proxy names the origin in the request itself
(RFC 9112 3.2.2, absolute form: ``GET http://www.example.com/a HTTP/1.1``)
or asks for a tunnel (``CONNECT www.example.com:443``, RFC 9110 9.3.6).
From that the proxy learns where to connect, what the request line to the
origin becomes (origin form: ``GET /a HTTP/1.1``), and whether it may go at
all: a request that comes back through the same proxy (its own name already
in ``Via``) is a loop, and an origin-form request means the client does not
know it is talking to a proxy.

``Proxy-Authorization`` is for this proxy alone: it is consumed here, never
forwarded (RFC 9110 11.7.2). Basic credentials are ``user:password`` in
base64 (RFC 7617).
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass

from lab.core.http1 import Head, HttpError

DEFAULT_PORTS = {"http": 80, "https": 443}
# Squid's forwarded_for: on (append the client), off (append "unknown"), transparent (leave it), delete (remove it)
FORWARDED_FOR = ("on", "off", "transparent", "delete")


@dataclass(frozen=True)
class Destination:
    """Where a request goes: the origin's host and port, and the request target to send it."""

    scheme: str  # "http", or "" for a CONNECT tunnel
    host: str  # a name or an address, as the client wrote it (lower case); IPv6 without brackets
    port: int
    target: str  # origin form for the origin ("/a?b"); "" for a tunnel

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS.get(self.scheme) else f"{host}:{self.port}"


def _host_port(authority: str, default: int | None, what: str) -> tuple[str, int]:
    if not authority or "@" in authority:
        raise HttpError(400, f"{what}: {authority!r} has no host, or carries user information (not allowed, RFC 9110 4.2.4)")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise HttpError(400, f"{what}: {authority!r} opens an IPv6 literal without closing it")
        host, rest = authority[1:end], authority[end + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise HttpError(400, f"{what}: {host!r} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise HttpError(400, f"{what}: {authority!r} has text after the IPv6 literal")
        port_text = rest[1:] if rest else ""
    else:
        host, sep, port_text = authority.rpartition(":") if ":" in authority else (authority, "", "")
        if not host:
            raise HttpError(400, f"{what}: {authority!r} has no host")
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise HttpError(400, f"{what}: {port_text!r} is not a port")
        port = int(port_text)
    elif default is None:
        raise HttpError(400, f"{what}: {authority!r} needs a port (CONNECT host:port, RFC 9110 9.3.6)")
    else:
        port = default
    if not all(c.isalnum() or c in "-._:" for c in host):
        raise HttpError(400, f"{what}: {host!r} is not a host name")
    return host.lower(), port


def destination(head: Head) -> Destination:
    """Where a request to a forward proxy goes, or an ``HttpError`` that says why it cannot."""
    if head.method == "CONNECT":
        host, port = _host_port(head.target, None, "CONNECT")
        return Destination("", host, port, "")
    target = head.target
    scheme, sep, rest = target.partition("://")
    if not sep:
        raise HttpError(400, f"{target[:60]!r} is not a full URL: a client using a proxy writes the absolute form "
                             "(GET http://host/path); is this client configured to use the proxy?")
    scheme = scheme.lower()
    if scheme != "http":
        raise HttpError(400, f"{scheme}:// is not forwarded here: plain http:// only, and https:// through CONNECT")
    authority, slash, path = rest.partition("/")
    authority, _, query = authority.partition("?")  # http://host?q has an empty path
    host, port = _host_port(authority, DEFAULT_PORTS["http"], "URL")
    origin_form = "/" + path if slash else "/"
    if query:
        origin_form += "?" + query
    return Destination("http", host, port, origin_form.split("#", 1)[0])


def loops_through(head: Head, name: str) -> bool:
    """True when this proxy's own name is already in Via: the request came around (a forwarding loop)."""
    via = head.get("Via") or ""
    return any(len(parts := hop.split()) >= 2 and parts[1].lower() == name.lower() for hop in via.split(","))


def basic_credentials(head: Head) -> tuple[str, str] | None:
    """(user, password) from ``Proxy-Authorization: Basic ...``; None when absent or not Basic or not decodable."""
    value = head.get("Proxy-Authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep and user else None


def forwarded_for(previous: str | None, client: str, mode: str) -> str | None:
    """The X-Forwarded-For to send on (None: send none), per Squid's ``forwarded_for`` setting."""
    if mode not in FORWARDED_FOR:
        raise ValueError(f"forwarded_for must be one of {', '.join(FORWARDED_FOR)}, not {mode!r}")
    if mode == "delete":
        return None
    if mode == "transparent":
        return previous
    added = client if mode == "on" else "unknown"
    return f"{previous}, {added}" if previous else added
