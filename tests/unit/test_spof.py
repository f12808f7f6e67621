"""SPOFs and predicted availability from the topology graphs (no root, no network)."""
import math
import random

import pytest

import topologies
from lab.analysis.spof import LINK, ServiceGraph, availability_of, importance, predicted, single_points_of_failure
from lab.cli import main
from lab.core.availability import parallel, series
from lab.core.scenario import Layout


def service(name, **params):
    topo, _ = topologies.make(name, params)
    return ServiceGraph(topologies.layout_of(topo))


def test_single_balancer_is_a_spof_and_the_origins_are_not():
    spofs = single_points_of_failure(service("single_lb"))
    assert set(spofs.everyone) == {"lb1", "s1", "lb1-s1"}
    assert dict(spofs.some) == {"c1-s1": ("c1",), "c2-s1": ("c2",)}  # a client's own cable cuts off only that client
    assert {"o1", "o2", "o3", "o1-s1"} <= set(spofs.redundant)


def test_vrrp_pair_removes_the_balancer_spof_but_not_the_shared_switch():
    s = service("active_standby")
    assert single_points_of_failure(s).everyone == ("s1",)
    assert s.served("c1", {"gw1"}) and s.served("c1", {"gw2-s1"})
    assert not s.served("c1", {"gw1", "gw2"}) and not s.served("c1", {"gw1", "gw2-s1"})
    assert not s.served("c1", {"o1", "o2", "o3"})


def test_bonding_removes_the_nic_and_switch_spof_but_the_server_stays_one():
    spofs = single_points_of_failure(service("bonding"))
    assert set(spofs.everyone) == {"s3", "srv"}
    assert {"s1", "s2", "srv-s1", "srv-s2"} <= set(spofs.redundant)


def test_prediction_equals_the_series_parallel_formula():
    rng = random.Random(3)
    s = service("active_standby", gateways=3, origins=4)
    values = {name: rng.uniform(0.9, 0.9999) for name in s.parts}
    a = availability_of(overrides=values)
    expected = series([
        values["c1-s1"], values["s1"],
        parallel(values[f"gw{n}"] * values[f"gw{n}-s1"] for n in (1, 2, 3)),
        parallel(values[f"o{k}"] * values[f"o{k}-s1"] for k in (1, 2, 3, 4)),
    ])
    assert math.isclose(predicted(s, "c1", a), expected, rel_tol=1e-12)


def test_prediction_of_a_bridge_network_matches_its_textbook_formula():
    # The bridge is the classic network series/parallel formulas cannot express:
    # R = 2p^2 + 2p^3 - 5p^4 + 2p^5 for five links of availability p.
    layout = Layout(
        nodes={"c": "client", "o": "origin", "sa": "switch", "sx": "switch", "sy": "switch", "sb": "switch"},
        links=(("c", "sa"), ("sa", "sx"), ("sa", "sy"), ("sx", "sy"), ("sx", "sb"), ("sy", "sb"), ("sb", "o")),
        addresses={"o": "10.0.0.2"}, targets={"c": "10.0.0.2"})
    s = ServiceGraph(layout)
    for p in (0.5, 0.9, 0.99):
        perfect = {name: 1.0 for name, part in s.parts.items() if part.kind != LINK or name in ("c-sa", "sb-o")}
        a = availability_of({"host": 1.0, "switch": 1.0, "link": p}, perfect)
        assert math.isclose(predicted(s, "c", a), 2 * p**2 + 2 * p**3 - 5 * p**4 + 2 * p**5, rel_tol=1e-12)
    assert single_points_of_failure(s).everyone == ("o", "sa", "sb", "c-sa", "sb-o")


def test_importance_ranks_the_spof_first_and_redundancy_pays():
    s = service("single_lb")
    ranking = importance(s, "c1", availability_of())
    assert ranking[0][0] == "lb1"
    assert dict(ranking)["o1"] < 1e-5
    two = predicted(service("active_standby"), "c1", availability_of())
    three = predicted(service("active_standby", gateways=3), "c1", availability_of())
    assert predicted(s, "c1", availability_of()) < two < three


def test_spof_command_refuses_bad_input_clearly(capsys):
    assert main(["spof", "single_lb", "--set", "lbx=0.5"]) == 2
    assert "lb1" in capsys.readouterr().err  # the known parts are listed
    assert main(["spof", "single_lb", "--link", "1.5"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert main(["spof", "single_lb"]) == 0
    out = capsys.readouterr().out
    assert "lb1, s1, lb1-s1" in out and "99.87%" in out


@pytest.mark.parametrize("name", topologies.names())
def test_every_topology_can_be_analysed(name):
    s = service(name)
    for client in s.clients:
        assert 0.99 < predicted(s, client, availability_of()) < 1


def test_report_tells_clients_apart_when_their_cables_differ_and_stays_quick_on_big_topologies():
    from lab.analysis.spof import report

    s = service("single_lb")
    lines = report("single_lb", s, availability_of(overrides={"c1-s1": 0.99}), "test")
    assert any(line.strip().startswith("c1 ") and "98.88%" in line for line in lines)  # 0.99 x the rest
    assert any(line.strip().startswith("c2 ") and "99.87%" in line for line in lines)
    big = service("active_standby", gateways=6, origins=20, clients=3)
    lines = report("active_standby", big, availability_of(), "test")
    assert any("importance not computed" in line for line in lines)
    assert any(line.strip().startswith("c1, c2, c3") for line in lines)  # alike clients computed once, listed together


def test_behind_a_dsr_balancer_the_way_back_is_part_of_the_service():
    # the answers bypass nat1 through the router r1: r1 becomes a single point of failure, which NAT does not have
    dsr = service("l4_lab", dsr=True)
    nat = service("l4_lab")
    assert dsr.served("c1") and not dsr.served("c1", ["r1"])
    assert "r1" not in nat.layout.nodes and nat.served("c1") and not nat.served("c1", ["nat1-s2"])  # NAT: answers come back through nat1
