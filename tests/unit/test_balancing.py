import random

import pytest

from lab.core.algorithms.roundrobin import RoundRobin
from lab.core.balancing import Pool, Server, make_algorithm


def pool(*names, backups=()):
    servers = [Server(n) for n in names] + [Server(b, backup=True) for b in backups]
    return Pool(servers, RoundRobin(), random.Random(0))


def picks(p, n):
    out = []
    for _ in range(n):
        s = p.pick()
        out.append(s.name if s else None)
    return out


def test_round_robin_cycles_in_order():
    assert picks(pool("a", "b", "c"), 7) == ["a", "b", "c", "a", "b", "c", "a"]


def test_down_server_is_skipped_and_rejoins_in_its_place():
    p = pool("a", "b", "c")
    assert picks(p, 2) == ["a", "b"]
    p["c"].up = False
    assert picks(p, 3) == ["a", "b", "a"]
    p["c"].up = True
    assert picks(p, 4) == ["b", "c", "a", "b"]


def test_last_pick_going_down_continues_with_the_next_one():
    p = pool("a", "b", "c")
    assert picks(p, 2) == ["a", "b"]
    p["b"].up = False
    assert picks(p, 3) == ["c", "a", "c"]


def test_backups_only_when_all_primaries_are_down():
    p = pool("a", "b", backups=("z",))
    assert set(picks(p, 4)) == {"a", "b"}
    p["a"].up = p["b"].up = False
    assert picks(p, 2) == ["z", "z"]
    p["b"].up = True
    assert picks(p, 2) == ["b", "b"]


def test_no_eligible_server_gives_none():
    p = pool("a")
    p["a"].up = False
    assert p.pick() is None


def test_drained_disabled_and_zero_weight_servers_take_nothing_new():
    p = pool("a", "b", "c", "d")
    p["b"].drain = True
    p["c"].disabled = True
    p["d"].weight = 0
    assert picks(p, 3) == ["a", "a", "a"]


def test_exclude_skips_named_servers():
    p = pool("a", "b")
    assert p.pick(exclude=["a"]).name == "b"
    assert p.pick(exclude=["a", "b"]) is None


def test_pick_counts():
    p = pool("a", "b")
    picks(p, 5)
    assert (p["a"].picked, p["b"].picked) == (3, 2)


def test_unknown_algorithm_and_duplicates():
    with pytest.raises(ValueError, match="unknown balancing algorithm 'rr'.*roundrobin"):
        make_algorithm("rr")
    with pytest.raises(ValueError, match="duplicate"):
        Pool([Server("a"), Server("a")], RoundRobin())
