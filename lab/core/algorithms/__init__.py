"""The balancing algorithms, one module each, behind one interface (``base.Algorithm``).

| name | module | follows | slot table (``table()``) |
|---|---|---|---|
| roundrobin | roundrobin.py | HAProxy static-rr with equal weights | each in turn |
| weighted_roundrobin | weighted_rr.py | nginx smooth weighted round robin | one smooth period |
| leastconn | leastconn.py | HAProxy leastconn (ties: round robin) | no: live counts |
| weighted_leastconn | leastconn.py | nginx least_conn (ties: smooth WRR) | no: live counts |
| random | random_choice.py | HAProxy random(1), weighted | slots by weight |
| p2c | random_choice.py | HAProxy random(2), Envoy least request | no: live counts |
| source | hashing.py | nginx ip_hash (first three octets) | slots by weight (kernel jhash) |
| hash | hashing.py | HAProxy hash-type map-based | slots by weight |
| consistent | hashing.py | nginx hash ... consistent (ketama ring) | no: a ring (use maglev) |
| maglev | hashing.py | Envoy / Google Maglev | Maglev's own table |
| least_time | least_time.py | Finagle/Linkerd peak EWMA | no: live latency |

A slot table is what a kernel data plane looks up per packet (nftables
``numgen``/``jhash ... map``); ``Algorithm.table`` fills it from the same
code the L7 balancer runs.
"""
from __future__ import annotations

from typing import Callable, Sequence

from lab.core.algorithms.base import Algorithm, RequestInfo, Server
from lab.core.algorithms.hashing import ConsistentRing, HashModN, Maglev, SourceIPHash
from lab.core.algorithms.least_time import LeastResponseTime
from lab.core.algorithms.leastconn import LeastConnections, WeightedLeastConnections
from lab.core.algorithms.random_choice import PowerOfTwo, Random
from lab.core.algorithms.roundrobin import RoundRobin
from lab.core.algorithms.weighted_rr import SmoothWeightedRR

HASHED = ("hash", "consistent", "maglev")
ALGORITHMS: dict[str, Callable[..., Algorithm]] = {
    "roundrobin": RoundRobin,
    "weighted_roundrobin": SmoothWeightedRR,
    "leastconn": LeastConnections,
    "weighted_leastconn": WeightedLeastConnections,
    "random": Random,
    "p2c": PowerOfTwo,
    "source": SourceIPHash,
    "hash": HashModN,
    "consistent": ConsistentRing,
    "maglev": Maglev,
    "least_time": LeastResponseTime,
}


def make_algorithm(name: str, servers: Sequence[Server] = (), hash_key: str = "uri") -> Algorithm:
    if name.endswith(".py") or ".py:" in name:  # a student's file (lab.core.plugins), checked when the scenario was read
        from lab.core.plugins import load

        return load(name)()
    if name not in ALGORITHMS:
        raise ValueError(f"unknown balancing algorithm {name!r}; expected one of: {', '.join(sorted(ALGORITHMS))}")
    if name in HASHED:
        return ALGORITHMS[name](key=hash_key)
    if name == "source":
        return SourceIPHash(servers)
    return ALGORITHMS[name]()


__all__ = ["ALGORITHMS", "Algorithm", "RequestInfo", "Server", "make_algorithm"]
