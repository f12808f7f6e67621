"""Lesson 08's causes of downtime, judged on what the network did: an HTTP flood, slow clients, a crash loop, a rack without power.

The lesson's graded scenarios run once per session (the ``shipped``
fixture, shared with test_shipped_scenarios, which holds them to their own
``[expect]``); these tests look at the same runs from the attacker's side
and the gateway's, and one short lab shows the flood without its defence.
"""
import dataclasses
import time
from pathlib import Path

from lab.analysis import report
from lab.events import read_events
from lab.net.faults import Faults
from lab.net.lab import Lab
from lab.net.roles import plan_services
from lab.runner import load_scenario
from lab.services.runtime import call

LESSON = "exercises/08-why-services-go-down"


def curl(host, url="http://10.0.0.2/"):
    code, total = host.cmd(f"curl -s -m 1 -o /dev/null -w '%{{http_code}} %{{time_total}}' {url}").split()
    return code, float(total)


def test_without_a_rate_limit_an_http_flood_fills_the_origins_queues_and_real_clients_wait(tmp_path):
    scenario = dataclasses.replace(load_scenario(f"{LESSON}/overload.toml"), faults=())
    with Lab(scenario, tmp_path / "run", say=lambda *a: None) as lab:
        lab.start_all(plan_services(scenario, lab.addresses, lab.run_dir))
        before = [curl(lab.net["c1"]) for _ in range(3)]
        faults = Faults(lab)
        faults.apply("http_flood", "c3/lb1")
        time.sleep(2)
        queued = sum(call(lab.services[f"o{i}-origin"].spec.config["control"], "stats")["in_flight"] for i in (1, 2, 3))
        during = [curl(lab.net["c1"]) for _ in range(3)]
        faults.apply("stop_http_flood", "c3/lb1")
        time.sleep(1.5)
        after = [curl(lab.net["c1"]) for _ in range(3)]
    assert all(code == "200" and t < 0.2 for code, t in before), before
    # 100 connections against 3 origins x capacity 2: the rest wait in the origins' queues, c1's requests with them
    assert queued > 3 * 2 * 5, f"requests at the origins, served or queued: {queued}"
    assert all(code != "200" or t > 0.5 for code, t in during), f"c1 during the flood (status, seconds): {during}"
    assert all(code == "200" and t < 0.2 for code, t in after), f"c1 after the flood stopped: {after}"


def test_a_rate_limit_answers_the_flood_with_429s_at_the_door_and_the_real_client_loses_nothing(shipped):
    run_dir = Path(shipped(f"{LESSON}/overload-limited.toml"))
    metrics = report.build(run_dir)
    assert metrics.total > 100 and metrics.failed == 0
    refused = [e for e in read_events(run_dir) if e["kind"] == "request_rejected"]
    assert refused and {e["client"] for e in refused} == {"10.0.0.103"} and {e["status"] for e in refused} == {429}
    done = (run_dir / "logs" / "c3-http_flood.log").read_text().splitlines()[-1]  # "done: ... answers: 200 N, 429 M"
    answers = dict(part.split() for part in done.split("answers: ")[1].split(", "))
    assert int(answers["429"]) > 10 * int(answers["200"]), done
    assert metrics.refused["lb1"]["rate_limited"] == len(refused)


def test_slow_clients_empty_the_origins_workers_but_not_the_gateway(shipped):
    run_dir = Path(shipped(f"{LESSON}/slowloris.toml"))
    events = read_events(run_dir)
    faults = [e for e in events if e["kind"] == "fault_applied"]
    at_origins, at_gateway = faults[0]["t"], next(e["t"] for e in faults if e["target"] == "c2/lb1")
    down = {e["server"] for e in events if e["kind"] == "health_changed" and e["after"] == "DOWN" and at_origins < e["t"] < at_gateway}
    assert down == {"o1", "o2", "o3"}, "every origin's workers held: even its health checks stay unanswered"
    head_timeouts = [e for e in events if e["kind"] == "request_rejected" and e["reason"] == "head_timeout"]
    assert len(head_timeouts) >= 200 and {e["client"] for e in head_timeouts} == {"10.0.0.102"}
    failed_later = [e for e in events if e["kind"] == "request_finished" and not e["ok"] and e["t"] > at_gateway]
    assert failed_later == [], "slow clients at the gateway cost the real client nothing"


def test_a_crash_loop_costs_nothing_with_retries_and_passive_checks(shipped):
    metrics = report.build(Path(shipped(f"{LESSON}/crash-loop.toml")))
    assert len(metrics.faults) == 3 and metrics.failed == 0 and metrics.saved_by_retry > 0


def test_a_rack_without_power_is_survived_by_the_other_rack_and_rejoins(shipped):
    metrics = report.build(Path(shipped(f"{LESSON}/site-down.toml")))
    (failover,) = [f for f in metrics.failovers if f.fault == "poweroff gw1"]
    assert failover.new_master == "gw2"
    assert metrics.served_by.get("o3", 0) > 0 and metrics.request_availability > 0.9


def test_forged_adverts_never_reach_gateways_that_accept_their_peers_only(shipped):
    run_dir = Path(shipped(f"{LESSON}/hijack-filtered.toml"))
    events = read_events(run_dir)
    sent = int((run_dir / "logs" / "c2-vrrp_forge.log").read_text().split("sent ")[1].split()[0])
    filtered = {e["gateway"]: e["dropped"] for e in events if e["kind"] == "vrrp_filtered"}
    assert sent >= 20 and filtered == {"gw1": sent, "gw2": sent}, (sent, filtered)  # every forged advert, dropped by each kernel
    forged_from = next(e["t"] for e in events if e["kind"] == "fault_applied")
    masters = [e["node"] for e in events if e["kind"] == "vrrp_state_changed" and e["after"] == "MASTER" and e["t"] < forged_from]
    changes = [(e["node"], e["after"]) for e in events if e["kind"] == "vrrp_state_changed" and e["t"] > forged_from
               and e["reason"] != "shutdown"]
    assert masters[-1] == "gw1" and changes == [], "gw1 held the VIP before the forgery and kept it through it"
    assert report.build(run_dir).failed == 0


def test_forged_arps_send_the_clients_to_the_attacker_and_the_masters_refreshed_garp_brings_them_back(tmp_path):
    from lab.runner import run

    scenario = load_scenario(f"{LESSON}/arp-spoof.toml")
    scenario = dataclasses.replace(scenario, duration=8, vrrp=dataclasses.replace(scenario.vrrp, garp_refresh=1.0))
    run_dir = run(scenario, tmp_path / "run", live=False, say=lambda *a: None)
    events = read_events(run_dir)
    metrics = report.build(run_dir)
    attack = next(e["t"] for e in events if e["kind"] == "fault_applied")
    stop = next(e["t"] for e in events if e["kind"] == "fault_reverted")
    sent = int((run_dir / "logs" / "c2-arp_spoof.log").read_text().split("sent ")[1].split()[0])
    assert sent >= 3
    # the clients' requests went to c2: timeouts, and no gateway saw them
    lost = [e for e in events if e["kind"] == "request_finished" and not e["ok"]]
    assert lost and all(e["error"] == "timeout" and attack < e["t"] < stop + 1.5 for e in lost), lost[:3]
    # none reached a gateway while its client still waited for it (the kernel may still deliver a retransmission of
    # one the client gave up on, once the MASTER's GARP has put the path right: that one was lost all the same)
    gave_up = {e["id"]: e["t"] + e["latency"] for e in lost}
    assert not [e for e in events if e["kind"] == "request_routed" and e["id"] in gave_up and e["t"] < gave_up[e["id"]]], \
        "a lost request reached a gateway in time"
    # gw1, MASTER all along, repeats its GARP every second (one frame each: keepalived's refresh repeat)
    refreshes = [e["t"] for e in events if e["kind"] == "garp_sent" and e["node"] == "gw1" and e["count"] == 1]
    assert len(refreshes) >= 6 and all(0.9 < b - a < 1.1 for a, b in zip(refreshes, refreshes[1:]))
    (recovery,) = metrics.recoveries
    assert recovery.took is not None and recovery.took <= 1.1, recovery  # back at gw1's next GARP, not after ARP's own probes


def test_a_bad_deploy_is_invisible_to_active_checks_and_ejected_by_passive_ones(shipped):
    run_dir = Path(shipped(f"{LESSON}/bad-deploy.toml"))
    events = read_events(run_dir)
    deployed = next(e["t"] for e in events if e["kind"] == "fault_applied")
    rolled_back = next(e["t"] for e in events if e["kind"] == "fault_reverted")
    assert not [e for e in events if e["kind"] == "health_changed" and e["server"] == "o2"], "o2's /health kept answering 200"
    failed = [e for e in events if e["kind"] == "request_finished" and not e["ok"]]
    # (a request sent a hair before the deploy's stamp may reach o2 just after it: 50 ms of slack)
    assert failed and all(e["status"] == 500 and e["upstream"] == "o2" and deployed - 0.05 <= e["t"] <= rolled_back for e in failed)
    ejections = [e["t"] for e in events if e["kind"] == "server_ejected" and e["server"] == "o2"]
    assert ejections and deployed < ejections[0] < deployed + 1.0, "3 errors in a row at about 8 requests a second to o2"
    # each time o2 came back before the rollback, it cost another 3 errors at most, then out again
    assert len(failed) <= 3 * len(ejections) + 3
