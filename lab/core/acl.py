"""Access restriction as Squid does it: ``acl`` definitions and ``http_access`` rules (pure, no I/O).

Written in Squid's own syntax (``squid.conf``), so a student can paste the
same lines into Squid and back (Squid 5.7, ``src/cf.data.pre``):

    acl NAME TYPE value ...      # values of one acl are ORed; more lines with the same name add values
    http_access allow|deny [!]NAME ...   # the acls of one line are ANDed

Rules are read top-down and the first line whose acls all match decides.
If no line matches, the answer is the opposite of the last line's (so a
list should end with ``deny all``); with no lines at all, everything is
denied. A ``proxy_auth`` acl met by a request without credentials stops
the check with "authentication required" (407 and ``Proxy-Authenticate``),
as Squid does; with credentials it is an ordinary match or mismatch.

Types: ``src`` and ``dst`` (addresses, CIDR blocks, ``a-b`` ranges),
``dstdomain`` (``.example.com`` is the domain and its subdomains,
``example.com`` only itself), ``port`` (numbers and ``a-b`` ranges),
``method``, ``url_regex`` (``-i`` makes the patterns after it
case-insensitive, ``+i`` case-sensitive again), ``proxy_auth`` (user names,
or ``REQUIRED``: any authenticated user) and ``time`` (day letters
``SMTWHFA``, ``D`` for weekdays, and/or ``hh:mm-hh:mm``). Predefined:
``all``, ``localhost``, ``to_localhost``, ``CONNECT``, ``manager``.

``STOCK`` is Squid's default rule set, with the place marked where the
scenario's own rules go (``stock(own)``): unsafe ports and CONNECT to
anything but 443 are denied before any rule of the lab's.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from lab.core.schema import suggest

TYPES = ("src", "dst", "dstdomain", "port", "method", "url_regex", "proxy_auth", "time")
PREDEFINED = {
    "all": ("src", ["0.0.0.0/0", "::/0"]),
    "localhost": ("src", ["127.0.0.1/32", "::1"]),
    "to_localhost": ("dst", ["127.0.0.0/8", "0.0.0.0/32", "::1"]),
    "CONNECT": ("method", ["CONNECT"]),
    "manager": ("url_regex", ["-i", "^cache_object://", "+i", "^https?://[^/]+/squid-internal-mgr/"]),
}
OWN_RULES = "# INSERT YOUR OWN RULE(S) HERE"
# Squid 5.7's default squid.conf, rules and all (localnet: the RFC 1918/6598/4193/4291 networks)
STOCK = f"""
acl localnet src 0.0.0.1-0.255.255.255 10.0.0.0/8 100.64.0.0/10 169.254.0.0/16 172.16.0.0/12 192.168.0.0/16 fc00::/7 fe80::/10
acl SSL_ports port 443
acl Safe_ports port 80 21 443 70 210 1025-65535 280 488 591 777
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost manager
http_access deny manager
{OWN_RULES}
http_access allow localnet
http_access allow localhost
http_access deny all
"""
DAYS = {"S": 6, "M": 0, "T": 1, "W": 2, "H": 3, "F": 4, "A": 5}  # Squid's day letters -> datetime.weekday()


class AclError(ValueError):
    """A line of the rules that Squid would refuse too; says which line and why."""

    def __init__(self, number: int, line: str, message: str) -> None:
        super().__init__(f"line {number}: {message}: {line.strip()!r}")
        self.number = number
        self.message = message


@dataclass(frozen=True)
class Request:
    """What the rules can look at."""

    src: str  # the client's address
    method: str
    url: str  # as the client sent it (absolute form, or host:port for CONNECT)
    host: str  # the destination host (a name or an address)
    port: int
    dst: str | None = None  # the destination's address, when known
    user: str | None = None  # the authenticated user (None: no valid credentials were given)
    when: datetime | None = None


ALLOWED, DENIED, AUTH_REQUIRED = 200, 403, 407


@dataclass(frozen=True)
class Decision:
    status: int  # ALLOWED, DENIED or AUTH_REQUIRED
    rule: str  # the http_access line that decided, as written, or why none did
    number: int | None  # its line number in the text (None: the default at the end)

    @property
    def allowed(self) -> bool:
        return self.status == ALLOWED

    def explain(self) -> str:
        where = f"line {self.number}: " if self.number is not None else ""
        verdict = {ALLOWED: "allowed", DENIED: "denied", AUTH_REQUIRED: "authentication required"}[self.status]
        return f"{verdict} by {where}{self.rule}"


Matcher = Callable[[Request], bool]


@dataclass
class Acl:
    name: str
    kind: str
    tests: list[Matcher] = field(default_factory=list)
    users: set[str] = field(default_factory=set)  # proxy_auth
    any_user: bool = False  # proxy_auth REQUIRED

    def matches(self, request: Request) -> bool | None:
        """True or False; None for a proxy_auth acl met without credentials (the check must stop and ask)."""
        if self.kind == "proxy_auth":
            if request.user is None:
                return None
            return self.any_user or request.user in self.users
        return any(test(request) for test in self.tests)


@dataclass(frozen=True)
class Rule:
    allow: bool
    terms: tuple[tuple[bool, str], ...]  # (negated, acl name)
    text: str
    number: int


MEMORY = 4096  # decisions remembered (a cheap bound: forgotten all at once when full)


@dataclass
class Policy:
    acls: dict[str, Acl]
    rules: list[Rule]
    memory: dict[Request, Decision] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.timed = any(acl.kind == "time" for acl in self.acls.values())  # decisions then depend on the minute too

    def check(self, request: Request) -> Decision:
        """The decision for ``request``: the same request fields always give the same decision, so it is
        remembered (a proxy sees the same client, method and URL again and again); a policy with a
        ``time`` acl keys its memory by the minute too."""
        minute = request.when.replace(second=0, microsecond=0) if self.timed and request.when is not None else None
        key = dataclasses.replace(request, when=minute)
        decision = self.memory.get(key)
        if decision is None:
            decision = self._decide(request)
            if len(self.memory) >= MEMORY:
                self.memory.clear()
            self.memory[key] = decision
        return decision

    def _decide(self, request: Request) -> Decision:
        for rule in self.rules:
            matched = True
            for negated, name in rule.terms:
                result = self.acls[name].matches(request)
                if result is None:
                    return Decision(AUTH_REQUIRED, rule.text, rule.number)
                if result == negated:
                    matched = False
                    break
            if matched:
                return Decision(ALLOWED if rule.allow else DENIED, rule.text, rule.number)
        if not self.rules:
            return Decision(DENIED, "no http_access lines: everything is denied", None)
        last = self.rules[-1]
        return Decision(DENIED if last.allow else ALLOWED, f"no line matched: the opposite of the last ({last.text})", None)


def parse(text: str) -> Policy:
    """Squid ``acl`` and ``http_access`` lines -> a policy; anything else is an ``AclError`` naming the line."""
    acls = {name: _acl(name, kind, values, 0, "(predefined)") for name, (kind, values) in PREDEFINED.items()}
    rules: list[Rule] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.strip().startswith("#") else ""
        if not line:
            continue
        words = line.split()
        if words[0] == "acl":
            if len(words) < 4:
                raise AclError(number, raw, "an acl needs a name, a type and at least one value (acl NAME TYPE value ...)")
            name, kind, values = words[1], words[2], words[3:]
            if name in PREDEFINED:
                raise AclError(number, raw, f"{name!r} is predefined and cannot be redefined")
            if name in acls and acls[name].kind != kind:
                raise AclError(number, raw, f"acl {name!r} was defined as {acls[name].kind}; one acl has one type")
            extra = _acl(name, kind, values, number, raw)
            if name in acls:
                acls[name].tests += extra.tests
                acls[name].users |= extra.users
                acls[name].any_user |= extra.any_user
            else:
                acls[name] = extra
        elif words[0] == "http_access":
            if len(words) < 3 or words[1] not in ("allow", "deny"):
                raise AclError(number, raw, "write http_access allow|deny ACL ... (at least one acl; 'all' for everything)")
            terms = []
            for word in words[2:]:
                negated, name = word.startswith("!"), word.lstrip("!")
                if name not in acls:
                    raise AclError(number, raw, f"no acl named {name!r}{suggest(name, list(acls))}")
                terms.append((negated, name))
            rules.append(Rule(words[1] == "allow", tuple(terms), line, number))
        else:
            raise AclError(number, raw, f"unknown directive {words[0]!r}{suggest(words[0], ['acl', 'http_access'])} "
                                        "(only acl and http_access lines belong here)")
    return Policy(acls, rules)


def stock(own: str = "") -> str:
    """Squid's default rules, with ``own`` lines where its squid.conf says to insert them."""
    return STOCK.replace(OWN_RULES, own.strip("\n") or OWN_RULES)


def _acl(name: str, kind: str, values: list[str], number: int, raw: str) -> Acl:
    if kind not in TYPES:
        raise AclError(number, raw, f"unknown acl type {kind!r}{suggest(kind, list(TYPES))} (known: {', '.join(TYPES)})")
    acl = Acl(name, kind)
    try:
        if kind in ("src", "dst"):
            acl.tests += [_address_test(kind, v) for v in values]
        elif kind == "dstdomain":
            acl.tests += [_domain_test(v) for v in values]
        elif kind == "port":
            acl.tests += [_port_test(v) for v in values]
        elif kind == "method":
            methods = {v.upper() for v in values}
            acl.tests.append(lambda r: r.method.upper() in methods)
        elif kind == "url_regex":
            acl.tests += _regex_tests(values)
        elif kind == "proxy_auth":
            acl.any_user = "REQUIRED" in values
            acl.users = {v for v in values if v != "REQUIRED"}
        elif kind == "time":
            acl.tests.append(_time_test(values))
    except ValueError as e:
        raise AclError(number, raw, str(e)) from None
    return acl


def _address_test(kind: str, value: str) -> Matcher:
    if "-" in value:
        first, _, last = value.partition("-")
        low, high = ipaddress.ip_address(first), ipaddress.ip_address(last.split("/")[0])
        if low.version != high.version or low > high:
            raise ValueError(f"{value!r} is not an address range (low-high)")

        def in_range(address: str | None) -> bool:
            ip = _ip(address)
            return ip is not None and ip.version == low.version and low <= ip <= high  # type: ignore[operator]
        return (lambda r: in_range(r.src)) if kind == "src" else (lambda r: in_range(r.dst or r.host))
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an address, a CIDR block or a range") from None

    def inside(address: str | None) -> bool:
        ip = _ip(address)
        return ip is not None and ip.version == network.version and ip in network
    return (lambda r: inside(r.src)) if kind == "src" else (lambda r: inside(r.dst or r.host))


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address((text or "").strip("[]"))
    except ValueError:
        return None


def _domain_test(value: str) -> Matcher:
    domain = value.lower().rstrip(".")
    if not domain or domain == ".":
        raise ValueError(f"{value!r} is not a domain")
    if domain.startswith("."):
        bare = domain[1:]
        return lambda r: (h := r.host.lower().rstrip(".")) == bare or h.endswith(domain)
    return lambda r: r.host.lower().rstrip(".") == domain


def _port_test(value: str) -> Matcher:
    low, sep, high = value.partition("-")
    if not low.isdigit() or (sep and not high.isdigit()):
        raise ValueError(f"{value!r} is not a port or a port range (80, 1025-65535)")
    a, b = int(low), int(high) if sep else int(low)
    if not 0 <= a <= b <= 65535:
        raise ValueError(f"{value!r} is not a port range within 0-65535")
    return lambda r: a <= r.port <= b


def _regex_tests(values: Iterable[str]) -> list[Matcher]:
    tests, flags = [], 0
    for value in values:
        if value == "-i":
            flags = re.IGNORECASE
        elif value == "+i":
            flags = 0
        else:
            try:
                pattern = re.compile(value, flags)
            except re.error as e:
                raise ValueError(f"{value!r} is not a regular expression ({e})") from None
            tests.append(lambda r, p=pattern: p.search(r.url) is not None)
    if not tests:
        raise ValueError("url_regex needs at least one pattern")
    return tests


def _time_test(values: list[str]) -> Matcher:
    days: set[int] | None = None
    span: tuple[int, int] | None = None
    for value in values:
        if m := re.fullmatch(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})", value):
            h1, m1, h2, m2 = map(int, m.groups())
            if not (h1 <= 24 and h2 <= 24 and m1 < 60 and m2 < 60) or h1 * 60 + m1 >= h2 * 60 + m2:
                raise ValueError(f"{value!r}: a time span is hh:mm-hh:mm with the start before the end")
            span = (h1 * 60 + m1, h2 * 60 + m2)
        elif re.fullmatch(r"[SMTWHFAD]+", value):
            days = {d for letter in value for d in (range(5) if letter == "D" else [DAYS[letter]])}
        else:
            raise ValueError(f"{value!r} is neither day letters (SMTWHFA, D = weekdays) nor hh:mm-hh:mm")

    def test(r: Request) -> bool:
        if r.when is None:
            return False
        minute = r.when.hour * 60 + r.when.minute
        return (days is None or r.when.weekday() in days) and (span is None or span[0] <= minute <= span[1])  # Squid: both ends in
    return test
