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
from datetime import datetime
from typing import Callable, Mapping

from lab.core import acl
from lab.core.forwarding import rewrite
from lab.core.http1 import Head, HttpError
from lab.core.schema import setting

DEFAULT_PORTS = {"http": 80, "https": 443}
PORT = 3128  # Squid's http_port, and halab's
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
    via = ",".join(head.get_all("Via"))  # every Via line: a second one could hide the hop that came around
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


def host_mismatch(head: Head, dest: Destination) -> str | None:
    """Why the Host header disagrees with the absolute-form target, or None.

    RFC 9112 3.2.2 has a proxy ignore Host and replace it with the target's
    authority, and halab does; but a request naming two different origins is
    a request built to be read differently by two hops (one routes by the
    URL, a cache or an origin behind it by Host), so it is refused with 400
    rather than silently repaired.
    """
    host = head.get("Host")
    if host is None or dest.scheme == "":
        return None
    name, _, port = host.lower().rpartition(":") if host.rfind(":") > host.rfind("]") else (host.lower(), "", "")
    name = name.strip("[]")
    if name != dest.host or int(port or DEFAULT_PORTS["http"]) != dest.port:
        return f"Host {host[:60]!r} names another origin than the URL ({dest.authority}): refused, as a smuggling attempt"
    return None


def origin_request(head: Head, raw: bytes, dest: Destination, client_ip: str, via: str, mode: str, chunked: bool = False) -> bytes:
    """The request as a forward proxy sends it to the origin (RFC 9112 3.2.2, RFC 9110 7.6).

    The request line goes back to origin form (``GET /a HTTP/1.1``), Host is
    the target's authority, hop-by-hop headers (``Proxy-Authorization`` and
    ``Proxy-Connection`` among them) end here, X-Forwarded-For follows the
    ``forwarded_for`` mode and ``Via`` gets this proxy's hop. ``raw`` is the
    head as received, blank line included.
    """
    xff = forwarded_for(head.get("X-Forwarded-For"), client_ip, mode)
    added = [("Host", dest.authority)]
    if xff is not None:
        added.append(("X-Forwarded-For", xff))
    added += [("Via", f"1.1 {via}"), ("Connection", "keep-alive")]
    if chunked:
        added.append(("Transfer-Encoding", "chunked"))
    return rewrite(head, raw[:-2], added, (head.method, dest.target, "HTTP/1.1"), OWN_HEADERS)


# Headers the proxy writes itself (Host from the URL, X-Forwarded-For by its mode); Expect was answered here.
OWN_HEADERS = frozenset({"host", "x-forwarded-for", "expect"})


@dataclass(frozen=True)
class ProxySettings:
    impl: str = setting("halab", "whose forward proxy runs on the proxy nodes", choices=("halab", "squid"))
    impls: Mapping[str, str] = setting({}, 'per-node proxy, e.g. fp2 = "squid" to run both side by side')
    port: int = setting(PORT, "the proxy's port (Squid's http_port, 3128)", minimum=1, maximum=65535)
    tls_port: int = setting(0, "an HTTPS proxy listener (curl --proxy https://NODE:PORT): the client's connection to the "
                               "proxy is encrypted too, CONNECT and host names included; 0 = none", minimum=0, maximum=65535)
    acl: str = setting("", "the lab's own acl and http_access lines, in Squid's syntax (squid.conf's)")
    stock: bool = setting(True, "Squid's default rules around them: unsafe ports denied, CONNECT only to 443, the local "
                                "networks allowed, everything else denied")
    users: Mapping[str, str] = setting({}, "Basic proxy authentication: user = password (a proxy_auth acl asks for them)")
    realm: str = setting("halab proxy", "the realm a 407 names in Proxy-Authenticate")
    forwarded_for: str = setting("on", "X-Forwarded-For, as Squid: on (add the client), off (add 'unknown'), transparent "
                                       "(leave it), delete (remove it)", choices=FORWARDED_FOR)
    timeout_connect: float = setting(5.0, "seconds to open a connection to an origin (Squid connect_timeout, 60 s)", minimum=0.01)
    timeout_server: float = setting(15.0, "seconds to wait for an origin's answer (Squid read_timeout, 15 min)", minimum=0.01)
    timeout_tunnel: float = setting(60.0, "seconds a CONNECT tunnel may carry nothing before it is closed", minimum=0.1)
    log_requests: bool = setting(True, "one proxy_request event per request, as Squid's access.log")
    cache: bool = setting(False, "keep answers and serve them again to the whole client LAN (the gateway's cache rules, "
                                 "RFC 9111; Squid: its memory cache)")

    def __post_init__(self) -> None:
        self.policy()  # a typo in the rules is an error in the scenario, before anything is built
        if self.tls_port and (self.impl == "squid" or "squid" in self.impls.values()):
            raise ValueError("tls_port (an HTTPS proxy) is halab's only so far; with Squid leave it at 0")
        if self.tls_port == self.port:
            raise ValueError(f"tls_port and port are both {self.port}")
        for user in self.users:
            if not user or ":" in user:
                raise ValueError(f"proxy user {user!r}: a Basic user name is not empty and has no ':'")

    def rules(self) -> str:
        return acl.stock(self.acl) if self.stock else self.acl

    def policy(self) -> acl.Policy:
        try:
            return acl.parse(self.rules())
        except acl.AclError as e:
            where = "the acl lines" if not self.stock else "the acl lines (inside Squid's stock rules)"
            raise ValueError(f"{where}, {e}") from None

    def impl_of(self, node: str) -> str:
        return self.impls.get(node, self.impl)


class Refusal(HttpError):
    """A request the proxy's rules refuse (403) or that must authenticate first (407): answered and logged, never forwarded."""

    def __init__(self, decision: acl.Decision, realm: str, request: acl.Request) -> None:
        auth = decision.status == acl.AUTH_REQUIRED
        headers = (("Proxy-Authenticate", f'Basic realm="{realm}"'),) if auth else ()
        message = (f"this proxy needs a user name and password ({decision.explain()})" if auth
                   else f"access {decision.explain()}")
        super().__init__(decision.status, message, "auth_required" if auth else "denied", headers)
        self.decision = decision
        self.request = request


def admit(head: Head, client_ip: str, name: str, policy: acl.Policy, users: Mapping[str, str], realm: str,
          when: datetime | None = None, resolve: Callable[[str], str | None] | None = None) -> tuple[Destination, str | None]:
    """Where the request goes and who asked (an authenticated user or None), or the ``HttpError`` to answer.

    In this order: the request must not have come around (its own name in
    Via: a client that aims the proxy at itself gets it back in origin
    form), the target must be one a proxy can forward, then the access
    rules decide. Credentials are checked against ``users`` before the
    rules see them: wrong ones count as none (the rules then ask again, 407).
    ``resolve`` gives a host name's address for ``dst`` acls (as Squid looks
    it up); addresses written as such need none.
    """
    if loops_through(head, name):  # first: a request that came around may have lost its absolute form on the way
        raise HttpError(403, f"forwarding loop: this request already passed {name} (Via: {head.get('Via', '')[:80]})", "loop")
    dest = destination(head)
    mismatch = host_mismatch(head, dest)
    if mismatch:
        raise HttpError(400, mismatch, "smuggling")
    creds = basic_credentials(head)
    user = creds[0] if creds is not None and users.get(creds[0]) == creds[1] else None
    request = acl.Request(client_ip, head.method, head.target, dest.host, dest.port, (resolve or _address)(dest.host), user, when)
    decision = policy.check(request)
    if not decision.allowed:
        raise Refusal(decision, realm, request)
    return dest, user


def _address(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


# Squid's access.log result codes for what a forward proxy without a cache does
RESULTS = {"forwarded": "TCP_MISS", "tunnel": "TCP_TUNNEL", "denied": "TCP_DENIED", "auth_required": "TCP_DENIED",
           "error": "TCP_MISS", "refused": "NONE_NONE"}
