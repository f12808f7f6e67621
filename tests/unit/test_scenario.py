"""Scenario validation: every mistake named before a network is built."""

import pytest

from lab.core.schema import ConfigError
from lab.runner import load_scenario

from .configs import scenario_from

DEMO = "exercises/01-health-checks-and-failover/scenario.toml"


parse = scenario_from


BASE = """
duration = 20
[topology]
name = "single_lb"
"""


def error(text):
    with pytest.raises(ConfigError) as e:
        parse(text)
    return str(e.value)


def test_demo_scenario_loads():
    s = load_scenario(DEMO)
    assert s.name == "failover-basics"
    assert [f.action for f in s.faults] == ["link_down", "link_up", "crash", "restart", "pause", "restore"]
    assert s.faults[0].target == "o1-s1"
    assert s.balancer.health.worst_detection() == pytest.approx(2.7)


def test_defaults():
    s = parse(BASE)
    assert s.layout.by_role("origin") == ["o1", "o2", "o3"]
    assert s.load.clients == ("c1", "c2")
    assert s.balancer.algorithm == "roundrobin" and s.balancer.health.inter == 2.0


def test_unknown_key_with_suggestion():
    msg = error(BASE + '[[faults]]\nat = 1\nacton = "crash"\n')
    assert msg.startswith("s.toml: faults[0].acton: unknown key; did you mean 'action'?")


def test_unknown_section():
    assert "did you mean 'balancer'" in error(BASE + "[balancr]\n")


def test_unknown_node_with_suggestion():
    msg = error(BASE + '[[faults]]\nat = 1\naction = "crash"\ntarget = "o4"\n')
    assert "faults[0].target" in msg and "no node named 'o4'" in msg


def test_client_cannot_crash():
    assert "is a client and runs no service" in error(BASE + '[[faults]]\nat = 1\naction = "crash"\ntarget = "c1"\n')


def test_fault_after_the_end():
    msg = error(BASE + '[[faults]]\nat = 25\naction = "crash"\ntarget = "o1"\n')
    assert "faults[0].at" in msg and "after the run ends (duration = 20.0 s)" in msg


def test_wrong_type_and_range():
    assert "got 'fast', expected a number" in error(BASE + '[load]\nrate = "fast"\n')
    assert "balancer.health.fall: got 0" in error(BASE + "[balancer.health]\nfall = 0\n")
    assert "expected one of 'lxbr', 'ovsbr'" in error(BASE.replace('"single_lb"', '"single_lb"\nswitch = "ovs"'))


def test_bad_topology_name_and_param():
    assert "no topology named 'single-lb'; did you mean 'single_lb'" in error(BASE.replace("single_lb", "single-lb"))
    assert "topology.origins: got 0" in error(BASE + "origins = 0\n")
    assert "topology.orgins: unknown key; did you mean 'origins'" in error(BASE + "orgins = 2\n")


def test_missing_required():
    assert "duration: is required" in error('[topology]\nname = "single_lb"\n')


def test_links_resolve_from_a_node_or_a_pair():
    s = parse(BASE + '[[faults]]\nat = 1\naction = "link_down"\ntarget = "s1-o2"\n[[faults]]\nat = 2\naction = "link_up"\ntarget = "o2"\n')
    assert [f.target for f in s.faults] == ["o2-s1", "o2-s1"]
    assert "no link between 'o1' and 'o2'" in error(BASE + '[[faults]]\nat = 1\naction = "link_down"\ntarget = "o1-o2"\n')
    assert "node 's1' has 6 links" in error(BASE + '[[faults]]\nat = 1\naction = "link_down"\ntarget = "s1"\n')


@pytest.mark.parametrize("faults,complaint", [
    ([("link_up", "o1")], "is not down at 1.0 s (nothing to heal)"),
    ([("crash", "o1"), ("crash", "o1")], "already crashed"),
    ([("resume", "o1")], "not paused"),
    ([("restart", "o2")], "not crashed"),
    ([("crash", "o1"), ("pause", "o1")], "bring it back before you pause it"),
])
def test_impossible_timelines(faults, complaint):
    text = BASE + "".join(f'[[faults]]\nat = {i + 1}\naction = "{a}"\ntarget = "{t}"\n' for i, (a, t) in enumerate(faults))
    assert complaint in error(text)


def test_restore_clears_everything_and_takes_no_target():
    s = parse(BASE + '[[faults]]\nat = 1\naction = "crash"\ntarget = "o1"\n[[faults]]\nat = 2\naction = "restore"\n'
              '[[faults]]\nat = 3\naction = "crash"\ntarget = "o1"\n')
    assert len(s.faults) == 3
    assert "takes no target" in error(BASE + '[[faults]]\nat = 1\naction = "restore"\ntarget = "o1"\n')


def test_faults_are_sorted_by_time():
    s = parse(BASE + '[[faults]]\nat = 5\naction = "restart"\ntarget = "o1"\n[[faults]]\nat = 1\naction = "crash"\ntarget = "o1"\n')
    assert [f.action for f in s.faults] == ["crash", "restart"]


def test_origin_overrides():
    s = parse(BASE + "[origins]\nlatency_ms = 5\n[origins.nodes.o3]\nlatency_ms = 200\n")
    assert s.origins["o1"].latency_ms == 5 and s.origins["o3"].latency_ms == 200
    assert "no origin named 'o9'" in error(BASE + "[origins.nodes.o9]\nlatency_ms = 1\n")


def test_unknown_client_in_load():
    assert "load.clients[0]: no client named 'c9'" in error(BASE + '[load]\nclients = ["c9"]\n')


def test_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("duration = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_scenario(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(tmp_path / "missing.toml")


def test_partition_targets_are_pairs():
    s = parse(BASE + '[[faults]]\nat = 1\naction = "partition"\ntarget = "o2/lb1"\n[[faults]]\nat = 2\naction = "unpartition"\ntarget = "lb1/o2"\n')
    assert [f.target for f in s.faults] == ["lb1/o2", "lb1/o2"]
    assert "write 'a/b'" in error(BASE + '[[faults]]\nat = 1\naction = "partition"\ntarget = "lb1"\n')
    assert "no host named 's1'" in error(BASE + '[[faults]]\nat = 1\naction = "partition"\ntarget = "lb1/s1"\n')
    assert "cut off from itself" in error(BASE + '[[faults]]\nat = 1\naction = "partition"\ntarget = "o1/o1"\n')
    assert "not partitioned at 1.0 s" in error(BASE + '[[faults]]\nat = 1\naction = "unpartition"\ntarget = "o1/o2"\n')


def test_vrrp_section_needs_vrrp_gateways_and_known_nodes():
    assert "has no VRRP gateways" in error(BASE + "[vrrp]\nadvert_interval = 0.1\n")
    vrrp = """
duration = 10
[topology]
name = "active_standby"
"""
    s = parse(vrrp + '[vrrp]\nadvert_interval = 0.1\n[vrrp.impls]\ngw2 = "keepalived"\n[vrrp.priorities]\ngw2 = 200\n')
    assert s.vrrp.impls == {"gw2": "keepalived"} and s.vrrp.priorities == {"gw2": 200}
    assert "did you mean 'keepalived'" in error(vrrp + '[vrrp.impls]\ngw2 = "keepalive"\n')
    assert "no VRRP node named 'gw3'" in error(vrrp + "[vrrp.priorities]\ngw3 = 10\n")
    assert "from 1 to 255" in error(vrrp + "[vrrp.priorities]\ngw1 = 300\n")
    assert "advert_interval: got 0.001" in error(vrrp + "[vrrp]\nadvert_interval = 0.001\n")


def test_poweroff_timeline():
    assert "already powered off" in error(BASE + '[[faults]]\nat = 1\naction = "poweroff"\ntarget = "o1"\n[[faults]]\nat = 2\naction = "poweroff"\ntarget = "o1"\n')
    assert "bring it back before you crash it" in error(BASE + '[[faults]]\nat = 1\naction = "poweroff"\ntarget = "o1"\n[[faults]]\nat = 2\naction = "crash"\ntarget = "o1"\n')


def test_maxconn_reaches_the_balancer_config():
    from pathlib import Path

    from lab.net.roles import plan_services

    s = load_scenario("exercises/03-vrrp-redundancy/active-active.toml")
    assert s.balancer.maxconn == 6
    addresses = dict(s.layout.addresses)
    (gw1,) = [sp for sp in plan_services(s, addresses, Path("/tmp/r")) if sp.key == "gw1-balancer"]
    assert gw1.config["maxconn"] == 6
    assert "maxconn: got -1" in error(BASE + "[balancer]\nmaxconn = -1\n")


@pytest.mark.parametrize("name", ["../x", ".hidden", "a/b", "a b", "", "x" * 65])
def test_a_scenario_name_must_be_a_plain_name(name):
    assert "s.toml: name: got" in error(f'name = "{name}"\n' + BASE)


def test_plain_scenario_names_are_accepted():
    for name in ("failover-basics", "n_way.2", "A1"):
        assert parse(f'name = "{name}"\n' + BASE).name == name


def test_client_limits_are_checked_and_reach_the_settings():
    s = parse(BASE + "[balancer]\ntimeout_http_request = 1.5\nmax_headers = 50\nbind = ['10.0.0.1']\n")
    assert s.balancer.client.timeout_http_request == 1.5 and s.balancer.client.max_headers == 50 and s.balancer.bind == ("10.0.0.1",)
    assert "balancer.max_headers: got 0" in error(BASE + "[balancer]\nmax_headers = 0\n")
    assert "max_line (9000) cannot be larger than max_head (8192)" in error(BASE + "[balancer]\nmax_head = 8192\nmax_line = 9000\n")
    assert "balancer.bind[0]: got 'lb1'" in error(BASE + "[balancer]\nbind = ['lb1']\n")
    assert "did you mean 'timeout_client'" in error(BASE + "[balancer]\ntimeout_clinet = 3\n")


def test_single_lb_keeps_its_24_up_to_89_origins_and_spills_bigger_labs_onto_a_16():
    from topologies.single_lb import origin_address

    assert origin_address(1, 3) == "10.0.0.11/24" and origin_address(89, 89) == "10.0.0.99/24"
    assert origin_address(1, 90) == "10.0.0.11/16" and origin_address(90, 90) == "10.0.1.1/16"
    assert origin_address(200, 200) == "10.0.1.111/16"
    addresses = {origin_address(k, 200).split("/")[0] for k in range(1, 201)}
    clients = {f"10.0.0.{100 + n}" for n in range(1, 51)}
    assert len(addresses) == 200 and not addresses & (clients | {"10.0.0.2"})  # no origin takes a client's or lb1's address
