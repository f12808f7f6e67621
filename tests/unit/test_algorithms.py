"""Every balancing algorithm, with exact sequences or measured distributions."""
import random
from collections import Counter

import pytest

from lab.core.algorithms import ALGORITHMS, make_algorithm
from lab.core.algorithms.base import RequestInfo, Server
from lab.core.algorithms.hashing import maglev_table
from lab.core.balancing import Pool, slowstart_weight


def pool(algorithm, weights=None, names=("a", "b", "c"), seed=1, slowstart=0.0, hash_key="uri"):
    weights = weights or {}
    servers = [Server(n, address=f"10.0.0.{i + 11}", weight=weights.get(n, 1)) for i, n in enumerate(names)]
    return Pool(servers, make_algorithm(algorithm, servers, hash_key), random.Random(seed), slowstart)


def seq(p, n, request=None):
    return "".join(p.pick(request).name for _ in range(n))


def test_smooth_wrr_matches_nginx_for_5_1_1():
    assert seq(pool("weighted_roundrobin", {"a": 5, "b": 1, "c": 1}), 14) == "aabacaa" * 2


def test_smooth_wrr_equal_weights_is_round_robin():
    assert seq(pool("weighted_roundrobin"), 6) == "abcabc"


@pytest.mark.parametrize("algorithm", ["weighted_roundrobin", "random", "p2c", "weighted_leastconn"])
def test_weighted_algorithms_follow_the_weights(algorithm):
    p = pool(algorithm, {"a": 5, "b": 3, "c": 2})
    counts = Counter(p.pick().name for _ in range(10000))
    for name, share in (("a", 0.5), ("b", 0.3), ("c", 0.2)):
        assert abs(counts[name] / 10000 - share) < 0.03, (algorithm, counts)


def test_leastconn_prefers_fewest_in_flight_and_round_robins_ties():
    p = pool("leastconn")
    p["a"].active, p["b"].active, p["c"].active = 3, 1, 1
    assert seq(p, 4) == "bcbc"
    p["b"].active = 5
    assert seq(p, 2) == "cc"


def test_weighted_leastconn_compares_like_nginx():
    p = pool("weighted_leastconn", {"a": 3, "b": 1, "c": 1})
    p["a"].active, p["b"].active, p["c"].active = 2, 1, 1  # 2/3 < 1/1
    assert p.pick().name == "a"
    p["a"].active = 3  # 3/3 == 1/1 == 1/1: smooth WRR among the three
    assert seq(p, 5) == "abaca"  # smooth WRR for 3,1,1


def test_p2c_never_picks_the_busiest_of_two():
    p = pool("p2c", names=("a", "b"))
    p["a"].active, p["b"].active = 10, 0
    draws = Counter(p.pick().name for _ in range(1000))
    assert draws["a"] < 300  # only when both draws land on a (1/4 of the time)


def test_source_hash_is_nginx_ip_hash():
    p = pool("source")
    # nginx: hash = 89; for 3 octets hash = (hash*113 + octet) % 6271; server = hash % total_weight
    h = 89
    for octet in (10, 0, 0):
        h = (h * 113 + octet) % 6271
    expected = "abc"[h % 3]
    assert p.pick(RequestInfo(client="10.0.0.101")).name == expected
    assert p.pick(RequestInfo(client="10.0.0.250")).name == expected  # same /24, same server


def test_source_hash_rehashes_only_the_clients_of_a_down_server():
    p = pool("source", names=("a", "b", "c", "d"))
    clients = [f"10.{i}.{j}.1" for i in range(20) for j in range(20)]
    before = {c: p.pick(RequestInfo(client=c)).name for c in clients}
    p["b"].up = False
    after = {c: p.pick(RequestInfo(client=c)).name for c in clients}
    moved = [c for c in clients if before[c] != after[c]]
    assert moved and all(before[c] == "b" for c in moved)


def remapped(algorithm, n=5, keys=4000, **kw):
    names = tuple(f"o{i}" for i in range(1, n + 1))
    p = pool(algorithm, names=names, **kw)
    reqs = [RequestInfo(path=f"/item/{k}") for k in range(keys)]
    before = [p.pick(r).name for r in reqs]
    p["o3"].up = False
    after = [p.pick(r).name for r in reqs]
    return sum(1 for x, y in zip(before, after) if x != y) / keys, before


def test_mod_n_remaps_most_keys():
    share, _ = remapped("hash")
    assert share > 0.6


@pytest.mark.parametrize("algorithm", ["consistent", "maglev"])
def test_consistent_and_maglev_remap_about_one_nth(algorithm):
    share, before = remapped(algorithm)
    owned_by_o3 = before.count("o3") / len(before)
    assert 0.12 < owned_by_o3 < 0.28  # about 1/5 of the keys
    assert share <= owned_by_o3 + 0.03  # little beyond the removed server's own keys


def test_hash_is_sticky_and_uses_the_configured_key():
    p = pool("hash", hash_key="header:X-User")
    r = RequestInfo(path="/x", headers={"x-user": "alice"})
    assert len({p.pick(r).name for _ in range(20)}) == 1
    with pytest.raises(ValueError, match="unknown hash key"):
        pool("consistent", hash_key="cookie").pick()


def test_maglev_table_is_full_and_balanced():
    table = maglev_table(["a", "b", "c"], 251)
    counts = Counter(table)
    assert -1 not in counts and sum(counts.values()) == 251
    assert max(counts.values()) - min(counts.values()) <= 1


def test_least_time_prefers_fast_and_probes_unmeasured_first():
    p = pool("least_time")
    assert seq(p, 3) == "abc"  # nobody measured yet: cost 0 each, round robin
    for _ in range(5):
        p.finished(p["a"], 0.010, True)
        p.finished(p["b"], 0.100, True)
        p.finished(p["c"], 0.020, True)
    assert p.pick().name == "a"
    p["a"].active = 4  # 10 ms x 5 = 50 ms > 20 ms x 1
    assert p.pick().name == "c"
    p.finished(p["c"], 0.001, False)  # a fast failure is not a fast answer
    assert p.algorithm.ewma["c"] > 0.2


def test_backups_take_over_only_when_primaries_are_gone():
    servers = [Server("a"), Server("b"), Server("z", backup=True)]
    p = Pool(servers, make_algorithm("weighted_roundrobin"), random.Random(1))
    assert set(seq(p, 10)) == {"a", "b"}
    p.set_up("a", False, 0), p.set_up("b", False, 0)
    assert seq(p, 3) == "zzz"


def test_slow_start_ramps_linearly():
    assert slowstart_weight(10, None, 5.0, 10.0) == 10
    assert slowstart_weight(10, 0.0, 2.5, 10.0) == pytest.approx(2.5)
    assert slowstart_weight(10, 0.0, 0.0, 10.0) == pytest.approx(0.1)
    assert slowstart_weight(10, 0.0, 11.0, 10.0) == 10
    p = pool("weighted_roundrobin", slowstart=10.0)
    p.set_up("c", False, 0.0)
    p.set_up("c", True, 100.0)
    early = Counter(p.pick(now=101.0).name for _ in range(300))
    late = Counter(p.pick(now=111.0).name for _ in range(300))
    assert early["c"] < 40 and abs(late["c"] - 100) <= 2


def test_runtime_weight_change_drain_and_disable():
    p = pool("weighted_roundrobin")
    p["a"].weight = 3
    assert Counter(seq(p, 50)) == Counter({"a": 30, "b": 10, "c": 10})
    p["b"].drain = True
    p["c"].disabled = True
    assert set(seq(p, 5)) == {"a"}


def test_every_registered_algorithm_picks_only_candidates():
    for name in ALGORITHMS:
        p = pool(name, names=("a", "b", "c", "d"))
        p["b"].up = False
        picked = {p.pick(RequestInfo(client=f"10.0.{i}.1", path=f"/{i}")).name for i in range(200)}
        assert "b" not in picked and picked <= {"a", "c", "d"}, name
