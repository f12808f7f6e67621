"""Causes of downtime, caused on purpose: a SYN flood (Scapy) against the gateway, with and without SYN cookies."""
import dataclasses
import time

from lab.net.faults import Faults
from lab.net.lab import Lab
from lab.net.roles import plan_services
from lab.runner import load_scenario

SCENARIO = "exercises/01-health-checks-and-failover/scenario.toml"


def fresh_connect(host):
    """(HTTP status, connect time) of one new connection to lb1 from ``host``."""
    code, connect = host.cmd("curl -s -m 2.5 -o /dev/null -w '%{http_code} %{time_connect}' http://10.0.0.2/").split()
    return code, float(connect)


def flooded(tmp_path, syncookies):
    base = load_scenario(SCENARIO)
    scenario = dataclasses.replace(base, faults=(), balancer=dataclasses.replace(base.balancer, syncookies=syncookies))
    with Lab(scenario, tmp_path / f"run-{syncookies}", say=lambda *a: None) as lab:
        lab.start_all(plan_services(scenario, lab.addresses, lab.run_dir))
        faults = Faults(lab)
        lb1 = lab.net["lb1"]
        faults.apply("syn_flood", "c2/lb1")
        deadline = time.time() + 10
        while int(lb1.cmd("ss -n -t state syn-recv | tail -n +2 | wc -l")) < 1500 and time.time() < deadline:
            time.sleep(0.2)  # full for strangers: the kernel drops their SYNs past 3/4 of tcp_max_syn_backlog (2048)
        half_open = int(lb1.cmd("ss -n -t state syn-recv | tail -n +2 | wc -l"))
        during = fresh_connect(lab.net["c1"])  # c1 has never talked to lb1: a stranger to its kernel
        faults.apply("stop_flood", "c2/lb1")
        stopped = time.time()
        # the flood's half-open entries expire one by one as their SYN-ACK retries run out: new clients get in again
        # once the queue is back under 3/4 (measured: within about a second)
        while (after := fresh_connect(lab.net["c1"]))[0] != "200" and time.time() < stopped + 15:
            time.sleep(0.5)
    return half_open, during, after


def test_a_syn_flood_shuts_new_clients_out_unless_syn_cookies_answer_for_the_full_queue(tmp_path):
    half_open, during, after = flooded(tmp_path, syncookies=False)
    assert half_open >= 1500
    assert during[0] == "000"  # its SYNs were dropped: no connection in 2.5 s
    assert after[0] == "200"  # the flood stopped, and the lab healed by itself
    half_open, during, after = flooded(tmp_path, syncookies=True)
    assert during[0] == "200" and after[0] == "200"  # the same flood, answered with cookies
