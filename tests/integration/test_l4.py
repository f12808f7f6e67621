"""The L4 balancer on the network: what the kernel's NAT, halab's TCP relay and HAProxy mode tcp really do.

Each test asserts on what answered (the origin's name in the body), on what
the origin saw (its request_parsed events: the TCP peer, the PROXY header)
and on the kernel's own state (the nftables table, conntrack), and tests the
repair of every fault it injects.
"""
import contextlib
import subprocess
import textwrap

import tomllib

import topologies
from lab.core.scenario import parse_scenario
from lab.events import read_events
from lab.net.faults import Faults
from lab.net.lab import Lab
from lab.net.roles import plan_services

from .conftest import wait_event, wait_until

NAT, RELAY = "10.4.0.2", "10.4.0.3"


def scenario(l4="", origins="", load="", inter=0.3, topology=""):
    text = textwrap.dedent("""
        duration = 10
        [topology]
        name = "l4_lab"
        clients = 1
        {topology}
        [origins]
        log_requests = true
        {origins}
        [l4]
        {l4}
        [l4.health]
        inter = {inter}
        fall = 2
        rise = 1
        [load]
        {load}
    """).format(l4=l4, origins=origins, load=load, inter=inter, topology=topology)
    return parse_scenario(tomllib.loads(text), "test.toml", topologies.lookup)


@contextlib.contextmanager
def running(s, tmp_path):
    """The scenario's network with its services started (no load, no faults: the test drives them)."""
    with Lab(s, tmp_path / "run", say=lambda *a: None) as lab:
        lab.start_all(plan_services(s, lab.addresses, lab.run_dir))
        yield lab


def fresh(host, address, n):
    """Who answered each of ``n`` requests, each on a new TCP connection ('-' when it failed)."""
    out = host.cmd(f"for i in $(seq {n}); do curl -s -m 2 http://{address}/ || echo '-'; done")
    return [line.removeprefix("served by ").strip() for line in out.strip().splitlines()]


def kept(host, address, n):
    """Who answered each of ``n`` requests sent on one kept-alive connection."""
    out = host.cmd(f"curl -s -m 5 {' '.join([f'http://{address}/'] * n)}")
    return [line.removeprefix("served by ").strip() for line in out.strip().splitlines()]


def parsed(run_dir):
    return [e for e in read_events(run_dir) if e["kind"] == "request_parsed" and e["target"] == "/"]


def test_nat_spreads_connections_keeps_a_connection_on_one_origin_and_heals_after_a_crash(tmp_path):
    s = scenario()
    with running(s, tmp_path) as lab:
        c1, nat1 = lab.net["c1"], lab.net["nat1"]
        table = nat1.cmd("nft list table ip halab_l4")
        spread = fresh(c1, NAT, 6)
        pinned = kept(c1, NAT, 6)
        seen = parsed(lab.run_dir)
        faults = Faults(lab)
        faults.apply("crash", "o2")
        wait_event(lab.run_dir, lambda e: e["kind"] == "l4_table" and e["reason"] == "o2 DOWN", 5, "table without o2")
        without = fresh(c1, NAT, 6)
        faults.apply("restart", "o2")
        wait_event(lab.run_dir, lambda e: e["kind"] == "l4_table" and e["reason"] == "o2 UP", 5, "table with o2 again")
        healed = fresh(c1, NAT, 6)
    assert "numgen inc mod 3 map @slots" in table
    assert spread == ["o1", "o2", "o3"] * 2  # round robin over new flows, decided on each SYN
    assert len(set(pinned)) == 1 and len(pinned) == 6  # one connection, one origin: L4 never sees the requests
    # NAT rewrites only the destination: every origin saw the client's own address
    assert {e["peer"].split(":")[0] for e in seen} == {"10.4.0.101"}
    assert sorted(set(without)) == ["o1", "o3"] and "-" not in without
    assert sorted(set(healed)) == ["o1", "o2", "o3"]


def test_a_crashed_control_plane_leaves_the_kernel_balancing_and_its_restart_takes_over_again(tmp_path):
    s = scenario()
    with running(s, tmp_path) as lab:
        c1 = lab.net["c1"]
        faults = Faults(lab)
        faults.apply("crash", "nat1")
        headless = fresh(c1, NAT, 3)
        faults.apply("crash", "o3")  # nobody checks health now: the table still sends every third flow to o3
        blind = fresh(c1, NAT, 3)
        faults.apply("restart", "nat1")
        wait_event(lab.run_dir, lambda e: e["kind"] == "l4_table" and e["reason"] == "o3 DOWN", 5, "the restarted control plane taking o3 out")
        seeing = fresh(c1, NAT, 4)
        faults.apply("restart", "o3")
        wait_event(lab.run_dir, lambda e: e["kind"] == "l4_table" and e["reason"] == "o3 UP", 5, "o3 back in the table")
        healed = fresh(c1, NAT, 3)
    assert sorted(headless) == ["o1", "o2", "o3"]
    assert sorted(blind) == ["-", "o1", "o2"]  # a reset from the dead origin: refused, not balanced away
    assert "-" not in seeing and "o3" not in seeing
    assert sorted(healed) == ["o1", "o2", "o3"]


def test_flush_on_down_cuts_the_flows_pinned_to_a_dead_backend(tmp_path):
    s = scenario(l4="flush_on_down = true")
    with running(s, tmp_path) as lab:
        c1 = lab.net["c1"]
        # three long-lived connections, one per origin (round robin), idle and open
        idle = c1.popen(["python3", "-c", "import socket,time\nss=[socket.create_connection(('10.4.0.2',80)) for _ in range(3)]\n"
                                          "time.sleep(30)"])
        lab.ledger.add_process(idle.pid, "c1 idle connections")
        try:
            wait_event(lab.run_dir, lambda e: e["kind"] == "l4_flows" and e["total"] == 3, 5, "three flows in conntrack")
            faults = Faults(lab)
            faults.apply("link_down", "o1")
            flushed = wait_event(lab.run_dir, lambda e: e["kind"] == "flows_flushed" and e["node"] == "nat1", 5, "o1's flows flushed")
            after = wait_event(lab.run_dir, lambda e: e["kind"] == "l4_flows" and e["total"] == 2, 5, "two flows left")
            faults.apply("link_up", "o1")
            wait_event(lab.run_dir, lambda e: e["kind"] == "l4_table" and e["reason"] == "o1 UP", 5, "o1 back in the table")
            healed = fresh(c1, NAT, 3)
        finally:
            idle.kill()
            idle.wait(5)
    assert flushed["server"] == "o1" and flushed["flows"] == 1
    assert after["flows"] == {"o1": 0, "o2": 1, "o3": 1}
    assert sorted(healed) == ["o1", "o2", "o3"]


def test_the_relay_makes_a_second_connection_names_the_client_in_a_proxy_header_and_retries_a_refused_connect(tmp_path):
    # health checks 10 s apart (o2's first at 3.3 s): the crash below is met by the relay's retry alone
    s = scenario(l4='proxy_protocol = "v1"', origins="proxy_protocol = true", load='target = "tcp1"', inter=10)
    with running(s, tmp_path) as lab:
        c1 = lab.net["c1"]
        spread = fresh(c1, RELAY, 3)
        seen = parsed(lab.run_dir)
        faults = Faults(lab)
        faults.apply("crash", "o2")
        retried = fresh(c1, RELAY, 6)  # before the health check has noticed: the relay tries the next origin
        faults.apply("restart", "o2")
        healed = fresh(c1, RELAY, 3)
        events = read_events(lab.run_dir)
    assert sorted(spread) == ["o1", "o2", "o3"]
    assert {e["peer"].split(":")[0] for e in seen} == {"10.5.0.3"}  # a second connection, from the relay's own address
    assert {e["proxied_for"].split(":")[0] for e in seen} == {"10.4.0.101"}  # ... and the PROXY line says who asked
    assert "-" not in retried
    assert any(e["kind"] == "connection_retried" and e["server"] == "o2" for e in events)
    assert sorted(healed) == ["o1", "o2", "o3"]


def test_haproxy_mode_tcp_runs_from_the_same_settings_and_logs_each_connection(tmp_path):
    s = scenario(l4='impl = "haproxy"')  # tcp1 runs HAProxy; nat1 stays the kernel's NAT
    with running(s, tmp_path) as lab:
        c1 = lab.net["c1"]
        spread = fresh(c1, RELAY, 3)
        routed = wait_until(lambda: [e for e in read_events(lab.run_dir) if e["kind"] == "connection_routed" and e["node"] == "tcp1"][2:],
                            5, "three connection_routed events from HAProxy")
        seen = parsed(lab.run_dir)
    assert sorted(spread) == ["o1", "o2", "o3"]
    assert {e["server"] for e in routed} <= {"o1", "o2", "o3"} and routed[0]["client"].startswith("10.4.0.101:")
    assert {e["peer"].split(":")[0] for e in seen} == {"10.5.0.3"}


SIDE_BY_SIDE = "exercises/07-l4-vs-l7/side-by-side.toml"


def test_the_lesson_s_captures_tell_nat_a_relay_and_l7_apart(shipped):
    from pathlib import Path

    from lab.analysis import report
    from lab.packets.l4wire import analyse

    run_dir = Path(shipped(SIDE_BY_SIDE))
    v = {x.balancer: x for x in analyse(run_dir)}
    assert set(v) == {"nat1", "tcp1", "lb1"} and all(x.requests_seen > 200 for x in v.values())
    # NAT: the client's own connection reaches the origin, decided once on the SYN
    assert v["nat1"].new_connection == 0 and v["nat1"].origin_sees == {"c1"} and v["nat1"].spread == 0
    # a relay: a second connection from its own address, still one origin per client connection
    assert v["tcp1"].same_connection == 0 and v["tcp1"].origin_sees == {"tcp1"} and v["tcp1"].spread == 0
    # L7: a second connection, X-Forwarded-For, and a connection's requests spread over the origins
    assert v["lb1"].same_connection == 0 and v["lb1"].origin_sees == {"lb1"} and v["lb1"].named_by == {"X-Forwarded-For"}
    assert v["lb1"].spread >= 1
    clients = report.build(run_dir).clients
    # kept-alive L4 clients stay where their connection went, also after o1 is repaired; L7 spreads every request
    assert len(clients["c1"]["served_by"]) <= 2 and len(clients["c3"]["served_by"]) == 3


def test_source_affinity_survives_the_table_being_remade(tmp_path):
    # jhash draws a random seed for every new rule unless given one; the table is remade on every change
    # (here: the control plane's restart), and a client must still reach the origin it reached before
    s = scenario(l4='algorithm = "source"')
    with running(s, tmp_path) as lab:
        c1 = lab.net["c1"]
        before = fresh(c1, NAT, 3)
        faults = Faults(lab)
        for _ in range(3):
            faults.apply("crash", "nat1")
            faults.apply("restart", "nat1")
        after = fresh(c1, NAT, 3)
        starts = [e for e in read_events(lab.run_dir) if e["kind"] == "l4_table" and e["reason"] == "start"]
    assert len(set(before)) == 1 and after == before
    assert len(starts) == 4


def test_direct_server_return_steers_by_mac_and_the_answers_never_pass_the_balancer(tmp_path):
    s = scenario(l4='algorithm = "hash"', topology="dsr = true")
    with running(s, tmp_path) as lab:
        c1, nat1 = lab.net["c1"], lab.net["nat1"]
        table = nat1.cmd("nft list table netdev halab_l4")
        lab.capture(("nat1-eth1",))
        c1.cmd("sleep 1")  # tcpdump's file exists a moment before it captures
        spread = fresh(c1, NAT, 30)  # 30 hashed ports miss an origin with probability 3 x (2/3)^30, 1.6e-5
        seen = parsed(lab.run_dir)
        faults = Faults(lab)
        faults.apply("crash", "o3")
        wait_event(lab.run_dir, lambda e: e["kind"] == "l4_table" and e["reason"] == "o3 DOWN", 5, "table without o3")
        without = fresh(c1, NAT, 6)
        faults.apply("restart", "o3")
        wait_event(lab.run_dir, lambda e: e["kind"] == "l4_table" and e["reason"] == "o3 UP", 5, "o3 back in the table")
        healed = fresh(c1, NAT, 30)
        # nat1's own back cable: no route, no MAC to steer to; the control plane must outlive it and heal
        faults.apply("link_down", "nat1-s2")
        wait_event(lab.run_dir, lambda e: e["kind"] == "health_changed" and e["node"] == "nat1" and e["after"] == "DOWN", 5, "DOWN")
        faults.apply("link_up", "nat1-s2")
        wait_until(lambda: sorted(set(fresh(c1, NAT, 12))) == ["o1", "o2", "o3"], 10, "every origin through nat1 again")
        died = [e for e in read_events(lab.run_dir) if e["kind"] in ("service_failed", "service_exited")]
    from lab.packets.l4wire import read

    back = read(lab.run_dir / "pcap" / "nat1-eth1.pcap", port=80)
    assert "ether daddr set jhash ip saddr . tcp sport mod 3" in table and 'fwd to "nat1-eth1"' in table
    assert set(spread) == {"o1", "o2", "o3"}  # each connection hashed on its own port
    assert {e["peer"].split(":")[0] for e in seen} == {"10.4.0.101"}  # the client itself, as with NAT
    # nat1 sent the client's packets on, untouched (still to 10.4.0.2), and not one answer came back through it
    assert any(p.src == "10.4.0.101" and p.dst == NAT for p in back)
    assert not [p for p in back if p.sport == 80 and p.dst == "10.4.0.101"]
    assert len(without) == 6 and set(without) <= {"o1", "o2"}
    assert set(healed) == {"o1", "o2", "o3"}
    assert died == []


KEPT_CLIENT = """
import http.client, sys, time
conn = http.client.HTTPConnection(sys.argv[1], 80, timeout=3)
for _ in range(int(sys.argv[2])):
    conn.request("GET", "/")
    answer = conn.getresponse()
    answer.read()
    print(answer.getheader("X-Served-By"), flush=True)
    time.sleep(0.25)
"""


def test_a_drained_origin_gets_no_new_flow_while_its_established_one_goes_on(tmp_path):
    from lab.services.runtime import call

    s = scenario()
    with running(s, tmp_path) as lab:
        c1, control = lab.net["c1"], lab.services["nat1-l4"].spec.config["control"]
        assert fresh(c1, NAT, 1) == ["o1"]  # round robin: the kept-alive connection below is the next flow, o2's
        kept = c1.popen(["python3", "-c", KEPT_CLIENT, NAT, "16"], stdout=subprocess.PIPE, text=True)
        lab.ledger.add_process(kept.pid, "c1 kept-alive client")
        c1.cmd("sleep 0.5")
        call(control, "set_server", server="o2", drain=True)
        wait_event(lab.run_dir, lambda e: e["kind"] == "l4_table" and e["reason"] == "o2 changed by the operator", 5, "o2 drained")
        drained = fresh(c1, NAT, 4)
        out, _ = kept.communicate(timeout=10)
        call(control, "set_server", server="o2", drain=False)
        wait_event(lab.run_dir, lambda e: e["kind"] == "l4_table" and e["reason"] == "o2 changed by the operator" and "o2" in e["slots"],
                   5, "o2 back in the table")
        back = fresh(c1, NAT, 3)
    assert "o2" not in drained and "-" not in drained
    assert out.split() == ["o2"] * 16  # the established connection finished its work on o2
    assert sorted(back) == ["o1", "o2", "o3"]
