"""Weighted shares and hashed keys, measured over real requests on the network.

The pure algorithms are tested exactly in tests/unit/test_algorithms.py; here
the same claims are checked on what the clients actually got back
(``served_by`` of every request), through the real balancer.
"""
import dataclasses

import pytest

from lab.analysis import report
from lab.runner import load_scenario, run

EX = "exercises/02-balancing-algorithms"


def run_variant(tmp_path, name, label, load=None, duration=None, **balancer):
    scenario = load_scenario(f"{EX}/{name}.toml")
    if duration is not None:
        scenario = dataclasses.replace(scenario, duration=duration)
    scenario = dataclasses.replace(scenario, balancer=dataclasses.replace(scenario.balancer, **balancer))
    if load:
        scenario = dataclasses.replace(scenario, load=dataclasses.replace(scenario.load, **load))
    return report.build(run(scenario, tmp_path / f"{name}-{label}", live=False, say=lambda *a: None))


@pytest.mark.parametrize("algorithm", ["random", "p2c", "weighted_leastconn"])
def test_weighted_algorithms_share_requests_by_weight_on_the_network(tmp_path, algorithm):
    # weights 5, 1, 1 (weighted.toml); 150 req/s for 6 s is about 900 requests, so a
    # fair random draw stays within 0.05 of 5/7 with more than 99.7 % probability (3 sigma).
    metrics = run_variant(tmp_path, "weighted", algorithm, load={"rate": 150}, algorithm=algorithm)
    assert metrics.request_availability == 1.0, metrics.errors
    shares = {k: v / metrics.ok for k, v in metrics.served_by.items()}
    assert abs(shares["o1"] - 5 / 7) < 0.05, f"{algorithm}: {shares}"
    assert abs(shares["o2"] - 1 / 7) < 0.05 and abs(shares["o3"] - 1 / 7) < 0.05, f"{algorithm}: {shares}"


def test_removing_one_of_five_origins_moves_most_keys_under_mod_n_and_only_its_own_under_ring_and_maglev(tmp_path):
    moves = {}
    for algorithm in ("hash", "consistent", "maglev"):
        # 7 s of the lesson's 8: o5 crashes at 3.5 s, so 3.5 s of 200 keys at 200 req/s on either side
        metrics = run_variant(tmp_path, "hashing", algorithm, duration=7, algorithm=algorithm)
        (label, m), = metrics.key_moves
        assert label == "crash o5" and m.keys > 150, (algorithm, m)  # of 200 keys, most seen before and after
        moves[algorithm] = m
    summary = {a: f"moved {m.fraction:.0%}, others {m.others_fraction:.0%}" for a, m in moves.items()}
    assert moves["hash"].fraction > 0.6, summary  # mod 5 -> mod 4: about 4 keys in 5 change server
    assert moves["consistent"].others_moved == 0, summary  # a ring moves only the keys of the server that left
    assert moves["maglev"].others_fraction < 0.1, summary  # Maglev: a little more than that
    for algorithm in ("consistent", "maglev"):
        assert 0.1 < moves[algorithm].fraction < 0.3, summary  # about 1/5: o5's own keys
