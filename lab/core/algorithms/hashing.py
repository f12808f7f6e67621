"""Hashing: the same key always goes to the same server (while the set holds).

Sticky placement matters when a server keeps something per key: a cache
(hit rate), a session, a shard. The key is a request property: the URI, a
header, or the client address. Three ways to map keys to servers:

- ``hash`` (map-based, HAProxy's default ``hash-type map-based``): server =
  hash(key) mod N. Even and cheap, but when N changes almost every key moves
  (from N to N-1 servers, a key stays only if both moduli agree: about 1/N
  of keys stay put). A cache in front of the servers goes cold at once.
- ``consistent`` (a ring, Karger 1997; nginx ``hash ... consistent`` uses
  ketama with 160 points per unit of weight): every server owns many points
  on a circle, a key belongs to the first point clockwise from hash(key).
  Removing one of N servers moves only the keys it owned, about 1/N.
- ``maglev`` (Google, NSDI 2016): a lookup table of prime size M, filled by
  letting servers take turns claiming slots in their own pseudo-random
  order. Even like mod-N, almost as stable as a ring, and O(1) to look up.

All three hash the *candidates* (servers that are UP), so a server going
DOWN changes the set exactly as removing it from the configuration would.
Hashes are MD5/CRC32 of the text, never Python's ``hash()`` (randomised per
process, so two balancers would disagree).
"""
from __future__ import annotations

import bisect
import hashlib
import random
import zlib
from typing import Sequence

from lab.core.algorithms.base import Algorithm, RequestInfo, Server, TableNotPossible, weighted_slots
from lab.core.algorithms.roundrobin import RoundRobin

RING_POINTS = 160  # per unit of weight: nginx ngx_http_upstream_hash_module.c (ketama)
MAGLEV_SIZE = 65537  # prime; Envoy's default table size


def request_key(request: RequestInfo, key: str) -> str:
    """'uri', 'path', 'source' or 'header:Name' -> the text to hash."""
    if key == "uri":
        return request.path
    if key == "path":
        return request.path.split("?", 1)[0]
    if key == "source":
        return request.client
    if key.startswith("header:"):
        name = key[7:].lower()
        return next((v for k, v in request.headers.items() if k.lower() == name), "")
    raise ValueError(f"unknown hash key {key!r}; expected uri, path, source or header:NAME")


def h32(text: str, seed: str = "") -> int:
    return int.from_bytes(hashlib.md5((seed + text).encode()).digest()[:4], "big")


class HashModN(Algorithm):
    name = "hash"
    uses_request = True

    def __init__(self, key: str = "uri") -> None:
        self.key = key

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        # Weighted like HAProxy map-based: the hash indexes the sum of weights.
        total = sum(max(1, round(s.w)) for s in candidates)
        slot = zlib.crc32(request_key(request, self.key).encode()) % total
        for s in candidates:
            slot -= max(1, round(s.w))
            if slot < 0:
                return s
        return candidates[-1]

    def table(self, candidates: Sequence[Server], size: int | None = None) -> list[int]:
        """The same map: the hash of the key indexes the sum of weights (``jhash ... mod size``)."""
        return weighted_slots(candidates, size)


class ConsistentRing(Algorithm):
    name = "consistent"
    uses_request = True

    def __init__(self, key: str = "uri", points: int = RING_POINTS) -> None:
        self.key = key
        self.points = points
        self._ring: tuple[tuple[str, ...], list[int], list[str]] | None = None

    def ring(self, candidates: Sequence[Server]) -> tuple[list[int], list[str]]:
        members = tuple(f"{s.name}:{s.weight}" for s in candidates)
        if self._ring is None or self._ring[0] != members:
            entries = sorted((h32(f"{s.name}-{i}"), s.name) for s in candidates for i in range(self.points * max(1, s.weight)))
            self._ring = (members, [e[0] for e in entries], [e[1] for e in entries])
        return self._ring[1], self._ring[2]

    def table(self, candidates: Sequence[Server], size: int | None = None) -> list[int]:
        raise TableNotPossible("consistent is a ring searched per key (bisect), not a slot table; maglev is the consistent "
                               "hash built as a table: use it for a kernel data plane")

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        hashes, owners = self.ring(candidates)
        i = bisect.bisect(hashes, h32(request_key(request, self.key))) % len(hashes)
        return next(s for s in candidates if s.name == owners[i])


def maglev_table(names: Sequence[str], size: int = MAGLEV_SIZE) -> list[int]:
    """Maglev's population: each backend claims its next preferred free slot in turn."""
    n = len(names)
    offsets = [h32(name, "offset") % size for name in names]
    skips = [h32(name, "skip") % (size - 1) + 1 for name in names]
    following = [0] * n
    table = [-1] * size
    filled = 0
    while True:
        for i in range(n):
            slot = (offsets[i] + following[i] * skips[i]) % size
            while table[slot] >= 0:
                following[i] += 1
                slot = (offsets[i] + following[i] * skips[i]) % size
            table[slot] = i
            following[i] += 1
            filled += 1
            if filled == size:
                return table


class Maglev(Algorithm):
    name = "maglev"
    uses_request = True

    def __init__(self, key: str = "uri", size: int = MAGLEV_SIZE) -> None:
        self.key = key
        self.size = size
        self._table: tuple[tuple[str, ...], list[int]] | None = None

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        names = tuple(s.name for s in candidates)
        if self._table is None or self._table[0] != names:
            self._table = (names, maglev_table(names, self.size))
        return candidates[self._table[1][h32(request_key(request, self.key)) % self.size]]

    def table(self, candidates: Sequence[Server], size: int | None = None) -> list[int]:
        """Maglev's own lookup table (``size`` should be prime: every backend's permutation then visits every slot)."""
        size = self.size if size is None else size
        if size < 2 or any(size % d == 0 for d in range(2, int(size ** 0.5) + 1)):
            raise ValueError(f"a Maglev table needs a prime size, got {size} (e.g. 251, 1021, 65537)")
        return maglev_table([s.name for s in candidates], size)


class SourceIPHash(Algorithm):
    """nginx ``ip_hash``: the first three octets of the client's IPv4 address.

    Clients of one /24 stick to one server. If that server is not a
    candidate, the hash is stirred again (up to 20 times) before falling
    back to round robin, exactly as nginx does
    (``ngx_http_upstream_ip_hash_module.c``); so the other clients do not move.
    """

    name = "source"
    uses_request = True

    def __init__(self, all_servers: Sequence[Server] = ()) -> None:
        self.all = list(all_servers)  # the full configured list, set by Pool
        self.fallback = RoundRobin()

    def choose(self, candidates: Sequence[Server], request: RequestInfo, rng: random.Random) -> Server:
        servers = self.all or list(candidates)
        names = {s.name for s in candidates}
        try:
            octets = [int(x) for x in request.client.split(".")[:3]]
        except ValueError:
            octets = []
        if len(octets) != 3:
            return self.fallback.choose(candidates, request, rng)
        total = sum(s.weight for s in servers)
        h = 89
        for _ in range(20):
            for byte in octets:
                h = (h * 113 + byte) % 6271
            w = h % total
            for s in servers:
                if w < s.weight:
                    break
                w -= s.weight
            if s.name in names:
                return next(c for c in candidates if c.name == s.name)
        return self.fallback.choose(candidates, request, rng)

    def table(self, candidates: Sequence[Server], size: int | None = None) -> list[int]:
        """Source affinity for a kernel data plane: ``jhash ip saddr mod size`` into weighted slots.

        The kernel hashes the whole address (nftables has no nginx /24 hash),
        so clients of one /24 may land on different servers; one client
        always lands on the same one while the set holds.
        """
        return weighted_slots(candidates, size)
