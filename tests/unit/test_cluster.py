"""[cluster]: placement, tunnel choice, clock offsets and merging (lab.core.cluster), with faked skews."""
import random

import pytest

from lab.core import cluster
from lab.core.cluster import ClusterSettings, Offset

from .configs import scenario_from

BASE = """
duration = 20
[topology]
name = "single_lb"
"""

HOSTS = ["c1", "c2", "lb1", "o1", "o2", "o3"]
LINKS = [("lb1", "s1"), ("o1", "s1"), ("o2", "s1"), ("o3", "s1"), ("c1", "s1"), ("c2", "s1")]


def settings(**kw):
    return ClusterSettings(**{"servers": ("localhost", "lab2"), **kw})


def error(text):
    with pytest.raises(cluster.ConfigError) as e:
        scenario_from(BASE + text)
    return str(e.value)


# ---- the scenario's table ----------------------------------------------------------------
def test_no_table_means_one_machine():
    assert scenario_from(BASE).cluster is None


def test_a_table_is_read():
    s = scenario_from(BASE + '[cluster]\nservers = ["localhost", "lab2"]\naddresses = { lab2 = "10.250.0.2" }\n'
                             'place = { "o*" = "lab2" }\ntunnel = "vxlan"\n')
    assert s.cluster.servers == ("localhost", "lab2")
    assert s.cluster.remote == ("lab2",)
    assert s.cluster.addresses == {"lab2": "10.250.0.2"}
    assert s.cluster.tunnel == "vxlan"


@pytest.mark.parametrize("text, words", [
    ('servers = ["lab2", "localhost"]', "write 'localhost' first"),
    ('servers = []', "at least one server"),
    ('servers = ["localhost", "lab2", "lab2"]', "named twice"),
    ('servers = ["localhost", "lab2"]\nplace = { "o*" = "lab3" }', "'lab3' is not one of the servers; did you mean 'lab2'?"),
    ('servers = ["localhost", "lab2"]\nplace = { "x*" = "lab2" }', "matches no node"),
    ('servers = ["localhost", "lab2"]\naddresses = { lab3 = "10.0.0.1" }', "not one of the servers"),
    ('servers = ["localhost", "lab2"]\naddresses = { lab2 = "10.0.0.300" }', "expected an IPv4 address"),
    ('servers = ["localhost", "lab2"]\ntunnel = "ssh"', "expected one of 'auto', 'gre', 'vxlan'"),
    ('servers = ["localhost", "lab2"]\nsshconfig = "x"', "did you mean 'ssh_config'?"),
    ('servers = ["localhost", "lab2"]\nssh_config = "no-such-file"', "no file"),
])
def test_mistakes_are_named(text, words):
    message = error("[cluster]\n" + text + "\n")
    assert words in message and "cluster" in message


# ---- placement ------------------------------------------------------------------------------
def test_patterns_place_hosts_and_the_switch_follows_most_of_its_hosts():
    placed = cluster.place(HOSTS, ["s1"], LINKS, settings(place={"o*": "lab2", "c*": "lab2"}))
    assert placed == {"c1": "lab2", "c2": "lab2", "lb1": "localhost", "o1": "lab2", "o2": "lab2", "o3": "lab2", "s1": "lab2"}
    assert cluster.crossing(LINKS, placed) == [("lb1", "s1")]


def test_first_pattern_wins_and_a_tie_keeps_the_switch_on_the_first_server():
    placed = cluster.place(HOSTS, ["s1"], LINKS, settings(place={"o1": "localhost", "o*": "lab2", "c1": "lab2"}))
    assert placed["o1"] == "localhost" and placed["o2"] == placed["o3"] == placed["c1"] == "lab2"
    assert placed["s1"] == "localhost"  # 3 against 3


def test_a_switch_can_be_placed_by_name():
    placed = cluster.place(HOSTS, ["s1"], LINKS, settings(place={"s1": "lab2"}))
    assert placed["s1"] == "lab2" and all(placed[h] == "localhost" for h in HOSTS)
    assert len(cluster.crossing(LINKS, placed)) == len(LINKS)


def test_without_patterns_everything_stays_here():
    placed = cluster.place(HOSTS, ["s1"], LINKS, settings())
    assert set(placed.values()) == {"localhost"} and not cluster.crossing(LINKS, placed)


# ---- tunnels -------------------------------------------------------------------------------
def test_auto_takes_gre_where_every_server_has_it_else_vxlan():
    assert cluster.choose_tunnel("auto", {"localhost": {"gre", "vxlan"}, "lab2": {"gre", "vxlan"}}) == "gre"
    assert cluster.choose_tunnel("auto", {"localhost": {"vxlan"}, "lab2": {"gre", "vxlan"}}) == "vxlan"


def test_a_kind_some_server_lacks_is_refused_by_name():
    with pytest.raises(ValueError, match="localhost cannot make a gre"):
        cluster.choose_tunnel("gre", {"localhost": {"vxlan"}, "lab2": {"gre", "vxlan"}})
    with pytest.raises(ValueError, match="lab2 has neither"):
        cluster.choose_tunnel("auto", {"localhost": {"vxlan"}, "lab2": set()})


def test_inner_mtu_leaves_room_for_the_tunnel():
    assert cluster.inner_mtu("vxlan", 1500) == 1450
    assert cluster.inner_mtu("gre", 1500) == 1462
    assert cluster.inner_mtu("vxlan", 9000) == 1500


# ---- clocks --------------------------------------------------------------------------------
def fake_samples(skew, rng, n=50, base=1000.0):
    """Round trips with random one-way delays; the server's clock runs `skew` ahead."""
    out = []
    t = base
    for _ in range(n):
        there, back = rng.uniform(0.0001, 0.02), rng.uniform(0.0001, 0.02)
        out.append((t, t + there + skew, t + there + back))
        t += 0.05
    return out


@pytest.mark.parametrize("skew", [0.0, 0.25, -3.5, 1e-4])
def test_the_estimate_is_within_its_bound_of_the_true_skew(skew):
    rng = random.Random(7)
    for _ in range(100):
        est = cluster.estimate(fake_samples(skew, rng))
        assert abs(est.offset - skew) <= est.bound + 1e-12
        assert est.bound <= 0.02  # the shortest of 50 round trips, halved


def test_the_shortest_round_trip_wins():
    samples = [(0.0, 10.0, 1.0), (2.0, 10.01, 2.02), (3.0, 9.0, 3.5)]
    est = cluster.estimate(samples)
    assert est.rtt == pytest.approx(0.02) and est.offset == pytest.approx(8.0) and est.bound == pytest.approx(0.01)


def test_a_sample_received_before_it_was_sent_is_not_used():
    with pytest.raises(ValueError, match="no usable"):
        cluster.estimate([(5.0, 1.0, 4.0)])


def test_drift_over_the_run_widens_the_bound():
    start, end = Offset(0.100, 0.001, 0.002, 20), Offset(0.110, 0.001, 0.002, 20)
    run = cluster.across_run(start, end)
    assert run.offset == pytest.approx(0.105) and run.bound == pytest.approx(0.005) and run.samples == 40
    steady = cluster.across_run(start, Offset(0.1001, 0.002, 0.004, 20))
    assert steady.bound == pytest.approx(0.002)


def test_merge_puts_every_server_on_this_clock_in_order():
    here = [{"t": 10.0, "kind": "fault_applied"}, {"t": 10.5, "kind": "request_failed"}]
    there = [{"t": 12.3, "kind": "health_changed"}, {"t": 9.0 + 2.0, "kind": "service_ready"}]
    merged = cluster.merge({"localhost": here, "lab2": there}, {"lab2": Offset(2.0, 0.001, 0.002, 10)})
    assert [(e["kind"], e["t"]) for e in merged] == [("service_ready", 9.0), ("fault_applied", 10.0),
                                                     ("health_changed", pytest.approx(10.3)), ("request_failed", 10.5)]
    assert there[0]["t"] == 12.3  # the server's own record is left as it was


def test_a_detection_across_servers_carries_both_bounds():
    offsets = {"lab2": Offset(2.0, 0.0015, 0.003, 10), "lab3": Offset(-1.0, 0.002, 0.004, 10)}
    assert cluster.pair_bound("localhost", "localhost", offsets) == 0
    assert cluster.pair_bound("localhost", "lab2", offsets) == pytest.approx(0.0015)
    assert cluster.pair_bound("lab2", "lab3", offsets) == pytest.approx(0.0035)


def test_the_instructors_doc_shows_every_key_and_its_example_is_valid():
    import re
    from pathlib import Path

    from lab.runner import tomllib

    doc = (Path(__file__).resolve().parents[2] / "docs" / "cluster.md").read_text()
    example = re.search(r"```toml\n(\[cluster\].*?)```", doc, re.S).group(1)
    table = tomllib.loads(example)["cluster"]
    assert set(table) == set(cluster.FIELDS), "docs/cluster.md: show every [cluster] key (lab.core.cluster.ClusterSettings)"
    table.pop("ssh_config")  # "" in the example: no file to find
    s = cluster.check_cluster(table, HOSTS + ["s1"], "docs/cluster.md")
    assert s.place == {"o*": "lab2"} and s.tunnel == "auto"


@pytest.mark.parametrize("text, path, words", [
    ('[topology]\nswitch = "ovsbr"', "topology.switch", "Linux bridges"),
    ('[capture]\ninterfaces = ["lb1-eth0", "o1-eth0"]', "capture.interfaces[1]", "o1-eth0 belongs to o1, placed on lab2"),
    ('[[faults]]\nat = 1\naction = "syn_flood"\ntarget = "o2/lb1"', "faults[0].target", "attacks start from hosts on localhost"),
])
def test_what_cannot_cross_servers_is_refused_before_anything_is_built(text, path, words):
    base = BASE.replace('[topology]\nname = "single_lb"\n', "")
    extra = text.replace("[topology]\n", "")
    topology = '[topology]\nname = "single_lb"\n' + (extra + "\n" if text.startswith("[topology]") else "")
    rest = "" if text.startswith("[topology]") else text + "\n"
    with pytest.raises(cluster.ConfigError) as e:
        scenario_from(base + topology + rest + '[cluster]\nservers = ["localhost", "lab2"]\nplace = { "o*" = "lab2" }\n')
    assert e.value.path == path and words in e.value.message


def test_captures_and_attacks_on_this_machine_are_fine():
    s = scenario_from(BASE + '[capture]\ninterfaces = ["lb1-eth0"]\n[[faults]]\nat = 1\naction = "syn_flood"\ntarget = "c1/lb1"\n'
                             '[cluster]\nservers = ["localhost", "lab2"]\nplace = { "o*" = "lab2" }\n')
    assert s.cluster.remote == ("lab2",)


def test_the_report_puts_the_clock_bound_beside_times_measured_across_servers():
    from types import SimpleNamespace

    from lab.analysis.report import _across

    m = SimpleNamespace(clocks={"nodes": {"lb1": "lab2", "o1": "localhost"}, "servers": {"lab2": Offset(0.004, 0.00021, 0.00042, 60)}})
    assert _across(m, "lb1", 2.4712) == "2.47 s ±0.21 ms"  # the fault is the lab's event (here), the detection lb1's (there)
    assert _across(m, "o1", 2.4712) == "2.47 s"
    assert _across(m, "lb1", None) == "—"
    assert _across(SimpleNamespace(clocks={}), "lb1", 1.0) == "1.00 s"


def test_a_scenarios_layout_is_placed_like_the_built_topology():
    s = scenario_from(BASE + '[cluster]\nservers = ["localhost", "lab2"]\nplace = { "o*" = "lab2" }\n')
    placed = cluster.place_nodes(s.layout.nodes, s.layout.links, s.cluster)
    assert placed == cluster.place(HOSTS, ["s1"], LINKS, settings(place={"o*": "lab2"}))
    assert sorted(cluster.crossing(s.layout.links, placed)) == [("o1", "s1"), ("o2", "s1"), ("o3", "s1")]


def test_check_says_where_each_node_runs_and_which_links_are_tunnels():
    s = scenario_from(BASE + '[cluster]\nservers = ["localhost", "lab2", "lab3"]\nplace = { "o*" = "lab2" }\ntunnel = "vxlan"\n')
    assert cluster.describe(s.cluster, s.layout.nodes, s.layout.links) == [
        "on localhost: c1 c2 lb1 s1", "on lab2: o1 o2 o3", "on lab3: nothing",
        "3 link(s) between servers, each a tunnel (vxlan): o1-s1, o2-s1, o3-s1"]


def test_doctor_takes_a_scenarios_servers_or_names_given_alone(tmp_path):
    from lab.net.cluster_check import settings_from

    assert settings_from("lab2,lab3", None).servers == ("localhost", "lab2", "lab3")
    with_table = tmp_path / "two.toml"
    with_table.write_text(BASE + '[cluster]\nservers = ["localhost", "lab2", "lab3"]\naddresses = { lab2 = "10.9.0.2" }\n')
    assert settings_from("all", str(with_table)).servers == ("localhost", "lab2", "lab3")
    one = settings_from("lab2", str(with_table))
    assert one.servers == ("localhost", "lab2") and one.addresses == {"lab2": "10.9.0.2"}
    without = tmp_path / "one.toml"
    without.write_text(BASE)
    with pytest.raises(cluster.ConfigError, match="has no \\[cluster\\] table"):
        settings_from("all", str(without))
