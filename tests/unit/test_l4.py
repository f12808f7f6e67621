"""The L4 balancer's pure part: slot tables from the shared algorithms, the nftables text, its settings and the PROXY protocol."""
import asyncio
import random

import pytest

from lab.core.l4 import HAPROXY_TCP, LOOKUPS, MAGLEV_SLOTS, Backend, L4Settings, moved, node_mode, ruleset, shares, slot_table
from lab.core.proxy_protocol import ProxyHeaderError, decode, encode
from lab.core.schema import ConfigError
from lab.net.render import HAPROXY_TCP_BALANCE, haproxy_tcp_config
from lab.services.origin import proxy_header
from lab.services.realbalancer import parse_line

from .configs import scenario_from

THREE = [Backend("o1", "10.5.0.11", 80), Backend("o2", "10.5.0.12", 80), Backend("o3", "10.5.0.13", 80)]
UP = {"o1": True, "o2": True, "o3": True}


def names(slots):
    return [b.name for b in slots]


def test_round_robin_is_each_backend_in_turn_and_skips_a_down_one():
    assert names(slot_table("roundrobin", THREE, UP)) == ["o1", "o2", "o3"]
    assert names(slot_table("roundrobin", THREE, {**UP, "o2": False})) == ["o1", "o3"]


def test_weighted_round_robin_holds_one_period_of_the_smooth_order():
    backends = [Backend("a", "10.5.0.11", 80, weight=5), Backend("b", "10.5.0.12", 80), Backend("c", "10.5.0.13", 80)]
    assert "".join(names(slot_table("weighted_roundrobin", backends, {}))) == "aabacaa"  # nginx's smooth order, not IPVS's aaaaabc


def test_hashed_and_random_tables_share_slots_by_weight():
    backends = [Backend("a", "10.5.0.11", 80, weight=2), Backend("b", "10.5.0.12", 80)]
    for algorithm in ("random", "source", "hash"):
        assert shares(slot_table(algorithm, backends, {})) == {"a": 2, "b": 1}


def test_backups_take_the_table_only_when_every_primary_is_down():
    backends = [*THREE[:2], Backend("spare", "10.5.0.19", 80, backup=True)]
    assert "spare" not in names(slot_table("roundrobin", backends, {}))
    assert names(slot_table("roundrobin", backends, {"o1": False, "o2": False})) == ["spare"]
    assert slot_table("roundrobin", backends, {"o1": False, "o2": False, "spare": False}) == []


def test_maglev_uses_the_ipvs_table_size_and_moves_about_one_in_n_clients():
    before = slot_table("maglev", THREE, UP)
    after = slot_table("maglev", THREE, {**UP, "o3": False})
    assert len(before) == MAGLEV_SLOTS
    keys = [random.Random(k).getrandbits(32) for k in range(5000)]
    # only o3's clients move (about a third); mod-N rehashing moves most of them
    assert moved(before, after, keys) == pytest.approx(1 / 3, abs=0.03)
    assert moved(slot_table("source", THREE, UP), slot_table("source", THREE, {**UP, "o3": False}), keys) > 0.6


def test_an_algorithm_that_needs_live_state_cannot_be_a_kernel_table():
    with pytest.raises(ValueError, match="live state"):
        slot_table("leastconn", THREE, UP)
    with pytest.raises(ValueError, match="mode = \"proxy\""):
        L4Settings(mode="nat", algorithm="leastconn")
    assert L4Settings(mode="proxy", algorithm="leastconn").algorithm == "leastconn"


def test_the_ruleset_replaces_the_whole_table_in_one_transaction():
    text = ruleset("10.4.0.2", 80, "source", slot_table("source", THREE, UP))
    lines = text.splitlines()
    assert lines[:3] == ["add table ip halab_l4", "delete table ip halab_l4", "table ip halab_l4 {"]
    assert "elements = { 0 : 10.5.0.11 . 80, 1 : 10.5.0.12 . 80, 2 : 10.5.0.13 . 80 }" in text
    # a fixed seed: a client's hash must not change when the table is remade (the kernel picks a random one otherwise)
    assert "ip daddr 10.4.0.2 tcp dport 80 counter dnat ip addr . port to jhash ip saddr mod 3 seed 0x68616c61 map @slots" in text


def test_with_no_backend_left_new_flows_are_refused_with_a_reset():
    text = ruleset("10.4.0.2", 80, "roundrobin", [])
    assert "dnat" not in text and "ip daddr 10.4.0.2 tcp dport 80 counter reject with tcp reset" in text


def test_every_table_algorithm_has_a_lookup_and_haproxy_tcp_spells_its_own():
    assert set(LOOKUPS) == {"roundrobin", "weighted_roundrobin", "random", "source", "hash", "maglev"}
    assert set(HAPROXY_TCP_BALANCE) == set(HAPROXY_TCP)


def test_settings_refuse_what_the_chosen_data_plane_cannot_do():
    with pytest.raises(ValueError, match="cannot be mode"):
        L4Settings(impl="haproxy", mode="nat")
    with pytest.raises(ValueError, match="HAProxy mode tcp has no algorithm 'maglev'"):
        L4Settings(impl="haproxy", algorithm="maglev")
    with pytest.raises(ValueError, match="already sees the client"):
        L4Settings(mode="nat", proxy_protocol="v1")
    assert node_mode(L4Settings(), "proxy") == "proxy" and node_mode(L4Settings(mode="nat"), "proxy") == "nat"


parse = scenario_from


L4_LAB = """
duration = 10
[topology]
name = "l4_lab"
"""


def test_the_l4_section_and_its_health_table_are_read_and_checked():
    s = parse(L4_LAB + "[l4]\nalgorithm = \"maglev\"\nflush_on_down = true\n[l4.health]\ninter = 0.5\nfall = 2\n")
    l4 = s.roles["l4"]
    assert (l4.algorithm, l4.flush_on_down, l4.health.kind, l4.health.inter, l4.health.fall) == ("maglev", True, "tcp", 0.5, 2)
    assert s.layout.modes == {"nat1": "nat", "tcp1": "proxy"}


@pytest.mark.parametrize("text, where", [
    ("[l4]\nalgoritm = \"source\"\n", "l4.algoritm"),
    ("[l4.health]\nfal = 2\n", "l4.health.fal"),
    ("[l4]\nhealth = 3\n", "l4.health"),
    ("[l4]\nmode = \"nat\"\nalgorithm = \"leastconn\"\n", "l4"),
])
def test_a_mistake_in_the_l4_section_is_named(text, where):
    with pytest.raises(ConfigError) as e:
        parse(L4_LAB + text)
    assert f"s.toml: {where}" in str(e.value) or where in str(e.value)


def test_an_l4_section_on_a_topology_without_l4_nodes_is_refused():
    with pytest.raises(ConfigError, match="no l4 nodes"):
        parse("duration = 10\n[topology]\nname = \"single_lb\"\n[l4]\nport = 81\n")


def test_clients_aim_at_the_nat_balancer_on_its_own_port(tmp_path):
    from lab.net.roles import plan_load

    s = parse(L4_LAB + "[l4]\nport = 8080\n")
    specs = plan_load(s, s.layout.addresses, tmp_path, 0.0)
    assert {(spec.config["target"], spec.config["port"]) for spec in specs} == {("10.4.0.2", 8080)}


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_headers_round_trip(version):
    header = encode(version, "10.4.0.101", 40000, "10.4.0.3", 80)
    assert decode(header) == (("10.4.0.101", 40000, "10.4.0.3", 80), len(header))
    assert decode(header[:10])[1] == -1  # not all there yet
    assert decode(b"GET / HTTP/1.1\r\n") == (None, 0)


def test_the_v1_header_is_the_spec_s_text_line():
    assert encode("v1", "10.4.0.101", 40000, "10.4.0.3", 80) == b"PROXY TCP4 10.4.0.101 10.4.0.3 40000 80\r\n"
    assert decode(b"PROXY UNKNOWN\r\n") == (None, 15)


@pytest.mark.parametrize("bad", [b"PROXY TCP4 10.4.0.101 10.4.0.3 40000\r\n", b"PROXY TCP4 10.4.0.999 10.4.0.3 1 80\r\n",
                                 b"PROXY TCP4 10.4.0.1 10.4.0.3 0 80\r\n", b"PROXY TCP6 ::1 ::1 1 80\r\n", b"PROXY " + b"x" * 120])
def test_a_broken_v1_header_is_an_error_not_a_guess(bad):
    with pytest.raises(ProxyHeaderError):
        decode(bad)


def read_through_origin(data):
    async def go():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await proxy_header(await reader.readuntil(b"\r\n\r\n"), reader)
    return asyncio.run(go())


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_an_origin_takes_the_header_off_and_reads_the_request_after_it(version):
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert read_through_origin(encode(version, "10.4.0.101", 40000, "10.4.0.3", 80) + request) == ("10.4.0.101:40000", request)
    assert read_through_origin(request) == (None, request)


def test_haproxy_tcp_config_carries_the_settings_and_its_log_lines_become_events():
    text = haproxy_tcp_config(L4Settings(mode="proxy", algorithm="leastconn", proxy_protocol="v2", flush_on_down=True),
                              [{"name": "o1", "address": "10.5.0.11", "port": 80}], "/run/x.pid", "10.4.0.3")
    assert "mode tcp" in text and "balance leastconn" in text and "bind 10.4.0.3:80" in text
    assert "server o1 10.5.0.11:80 check inter 2000ms rise 2 fall 3 weight 1 send-proxy-v2 on-marked-down shutdown-sessions" in text
    names_ = {"o1": "o1"}
    assert parse_line("haproxy", "CONN 1700000000.250 10.4.0.101:40000 o1 0 1", names_) == (
        "connection_routed", {"t": 1700000000.251, "client": "10.4.0.101:40000", "server": "o1", "attempt": 0})
    assert parse_line("haproxy", "CONN 1700000000.250 10.4.0.101:40000 <NOSRV> -1 -1", names_)[0] == "connection_failed"


def test_a_live_state_algorithm_is_refused_for_the_nat_node_the_topology_built_before_anything_runs():
    with pytest.raises(ConfigError, match="nat1 balances in the kernel"):
        parse(L4_LAB + '[l4]\nalgorithm = "leastconn"\n')
    assert parse(L4_LAB + '[l4]\nalgorithm = "leastconn"\nmode = "proxy"\n').roles["l4"].algorithm == "leastconn"


def test_dsr_rewrites_only_the_mac_with_a_flow_hash_and_refuses_what_cannot_steer_it():
    from lab.core.l4 import dsr_ruleset

    macs = {"o1": "aa:00:00:00:00:01", "o2": "aa:00:00:00:00:02", "o3": "aa:00:00:00:00:03"}
    text = dsr_ruleset("10.4.0.2", 80, "hash", slot_table("hash", THREE, UP), macs, "nat1-eth0", "nat1-eth1")
    assert 'type filter hook ingress device "nat1-eth0"' in text and "table netdev halab_l4" in text
    assert ("ip daddr 10.4.0.2 tcp dport 80 counter ether daddr set jhash ip saddr . tcp sport mod 3 seed 0x68616c61 map @macs "
            'fwd to "nat1-eth1"') in text
    assert "dnat" not in text and "fwd" not in dsr_ruleset("10.4.0.2", 80, "hash", [], macs, "nat1-eth0", "nat1-eth1")
    with pytest.raises(ValueError, match="only a hash of the flow"):
        L4Settings(mode="dsr", algorithm="roundrobin")
    with pytest.raises(ConfigError, match="set dsr = true"):
        parse(L4_LAB + '[l4]\nmode = "dsr"\nalgorithm = "source"\n')
    with pytest.raises(ConfigError, match="keeps no flows"):
        parse('duration = 10\n[topology]\nname = "l4_lab"\ndsr = true\n[l4]\nalgorithm = "maglev"\nflush_on_down = true\n')
    s = parse('duration = 10\n[topology]\nname = "l4_lab"\ndsr = true\n[l4]\nalgorithm = "maglev"\n')
    assert s.layout.modes["nat1"] == "dsr" and s.layout.loopbacks["o1"] == ("10.4.0.2",) and "r1" in s.layout.nodes


def test_ipvs_rules_come_from_the_same_settings_and_follow_health_like_keepalived():
    from lab.core.l4 import IPVS_SCHEDULERS, ipvs_rules

    backends = [*THREE[:2], Backend("spare", "10.5.0.19", 80, weight=3, backup=True)]
    assert ipvs_rules("10.4.0.2", 80, "maglev", "nat", backends, {}) == [
        "-A -t 10.4.0.2:80 -s mh", "-a -t 10.4.0.2:80 -r 10.5.0.11:80 -m -w 1", "-a -t 10.4.0.2:80 -r 10.5.0.12:80 -m -w 1"]
    # a DOWN server is left out; the backup only while every primary is DOWN; -g is direct routing
    assert ipvs_rules("10.4.0.2", 80, "source", "dsr", backends, {"o1": False, "o2": False})[1:] == ["-a -t 10.4.0.2:80 -r 10.5.0.19:80 -g -w 3"]
    assert set(IPVS_SCHEDULERS.values()) == {"rr", "wrr", "lc", "wlc", "sh", "mh"}  # ipvsadm.8's names
    with pytest.raises(ValueError, match="no scheduler for 'random'"):
        L4Settings(impl="ipvs", algorithm="random")
    with pytest.raises(ValueError, match="cannot be mode"):
        L4Settings(impl="ipvs", mode="proxy")


def test_ipvs_is_refused_before_the_build_where_the_kernel_lacks_it(monkeypatch):
    from lab.net import features
    from lab.net.errors import LabError

    s = parse(L4_LAB + '[l4]\nimpl = "ipvs"\n')
    monkeypatch.setattr(features, "probe", lambda name: features.Feature(name, False, "no ip_vs module in this kernel"))
    with pytest.raises(LabError, match="impl = \"halab\": the same settings on nftables"):
        features.check_l4(s)
    monkeypatch.setattr(features, "probe", lambda name: features.Feature(name, True, "available"))
    features.check_l4(s)  # a kernel with IPVS: nothing to say
