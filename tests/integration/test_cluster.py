"""A lab over two servers (Mininet Cluster Edition), the second a namespace of this machine running sshd.

One run of the demo scenario (exercises/01), shortened, with the origins
and their faults on the second server: o1's cable is pulled, o2 crashes,
o3 freezes, each repaired. A watcher thread looks at the processes while
the run goes on: the origins were started through the second server's
sshd (their SSH_CONNECTION names it), and the freeze really stops o3's
process there. After the run, nothing the lab made is left on either
server.
"""
import json
import os
import re
import threading
from pathlib import Path

import pytest

from lab.analysis import report
from lab.events import check, read_events
from lab.net.errors import LabError
from lab.net.stand_in import HERE, LINK, NETNS, SecondServer
from lab.net.state import STATE_DIR, Ledger
from lab.runner import load_scenario, run

from .conftest import DEMO, alive, root_interfaces, wait_event, wait_until

TIMELINE = """
[[faults]]
at = 1.5
action = "link_down"
target = "o1"
[[faults]]
at = 4.4
action = "link_up"
target = "o1"
[[faults]]
at = 5
action = "crash"
target = "o2"
[[faults]]
at = 7.5
action = "restart"
target = "o2"
[[faults]]
at = 8.5
action = "pause"
target = "o3"
[[faults]]
at = 11.4
action = "restore"
"""


def demo_over_two_servers(tmp_path, server):
    """exercises/01's scenario, 13 s long, with the faults above (each repaired after the detection bound, 2.7 s)
    and the origins on the second server."""
    text = Path(DEMO).read_text()
    text = text[: text.index("[[faults]]")] + TIMELINE  # the demo's own faults are last in its file
    text = re.sub(r"(?m)^duration = \d+", "duration = 13", text)
    text += (f'\n[cluster]\nservers = ["localhost", "lab2"]\naddresses = {{ lab2 = "{server.address}" }}\n'
             f'place = {{ "o*" = "lab2" }}\nssh_config = "{server.ssh_config}"\n')
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return load_scenario(path)


def ssh_connection(pid):
    """The SSH_CONNECTION sshd gave the process's session: 'client port server port' (the process was started through it)."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next((v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"SSH_CONNECTION=")), "")


def state_of(pid):
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def netns_interfaces():
    return set(os.popen(f"ip -n {NETNS} -o link show").read().split("\n")) - {""}


def interfaces_there():
    return {line.split(":")[1].strip() for line in netns_interfaces()}


@pytest.fixture(scope="module")
def second():
    server = SecondServer().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory, second):
    tmp = tmp_path_factory.mktemp("cluster")
    scenario = demo_over_two_servers(tmp, second)
    before_here, before_there = root_interfaces(), interfaces_there()
    run_dir = tmp / "run"
    seen = {}

    def watch():  # while the run goes on: where the origins run, and what the freeze did there
        ready = wait_event(run_dir, lambda e: e["kind"] == "service_ready" and e["node"] == "o3", 30, "o3 ready")
        seen["o3 ssh"] = ssh_connection(ready["pid"])
        wait_event(run_dir, lambda e: e["kind"] == "fault_applied" and e["action"] == "pause", 40, "the pause")
        seen["o3 state while paused"] = state_of(ready["pid"])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    run(scenario, run_dir, live=False, say=lambda *a: None)
    watcher.join(timeout=5)
    return scenario, run_dir, second, seen, (before_here, root_interfaces()), (before_there, interfaces_there())


def test_the_origins_ran_on_the_second_server(cluster_run):
    _, run_dir, server, seen, _, _ = cluster_run
    events = read_events(run_dir)
    built = next(e for e in events if e["kind"] == "lab_built")
    assert {n: s for n, s in built["servers"].items() if s == "lab2"} == {"o1": "lab2", "o2": "lab2", "o3": "lab2"}
    assert built["servers"]["lb1"] == built["servers"]["s1"] == "localhost"  # s1: 3 local hosts against 3, a tie stays here
    client, _, there, port = seen["o3 ssh"].split()  # o3's origin was started through the second server's sshd
    assert (client, there, port) == (HERE, server.address, "22")
    problems = sorted({p for e in events for p in check(e)})
    assert not problems


def test_the_faults_acted_on_the_second_server(cluster_run):
    _, run_dir, _, seen, _, _ = cluster_run
    events = read_events(run_dir)
    ready = [e for e in events if e["kind"] == "service_ready" and e["node"] == "o2"]
    crash = next(e for e in events if e["kind"] == "fault_applied" and e["action"] == "crash")
    restart = next(e for e in events if e["kind"] == "fault_reverted" and e["action"] == "restart")
    assert crash["killed"] == [ready[0]["pid"]], "the crash did not kill o2's process on the second server"
    assert restart["started"] == [ready[1]["pid"]] and len(ready) == 2
    assert seen["o3 state while paused"] == "T", "the pause did not stop o3's process there"
    down = next(e for e in events if e["kind"] == "fault_applied" and e["action"] == "link_down")
    assert sorted(down["interfaces"]) == ["o1-eth0", "s1-eth2"]  # both ends of the tunnel: it carries no link state


def test_the_report_has_the_demos_shape_and_the_clock_bound(cluster_run):
    scenario, run_dir, _, _, _, _ = cluster_run
    metrics = report.build(run_dir)
    report.write(metrics, run_dir)
    text = (run_dir / "report.md").read_text()
    # each fault costs about a third of the requests until it is detected (up to 2.7 s of 13): about 0.84 in all
    assert 0.75 < metrics.request_availability < 1.0, "faults cost some requests, redundancy saved most"
    assert [f.action for f in metrics.faults] == ["link_down", "crash", "pause"]
    clocks = json.loads((run_dir / "clocks.json").read_text())["servers"]["lab2"]
    assert abs(clocks["offset"]) <= clocks["bound"] + 1e-4  # one machine, one clock: the estimate brackets zero
    bound = scenario.balancer.health.worst_detection()
    for f in metrics.faults:
        assert f.detection is not None and 0 < f.detection <= bound + 0.1 + clocks["bound"], f"{f.action} detected after {f.detection}"
    assert "Clocks" in text and "lab2" in text


def test_nothing_is_left_on_either_server(cluster_run):
    _, _, _, _, (before_here, after_here), (before_there, after_there) = cluster_run
    assert after_here == before_here
    assert after_there == before_there and len(before_there) == 2  # lo and the veth end the test made
    assert Ledger.open(STATE_DIR / "ledger.json").empty
    assert Ledger.open(STATE_DIR / "served" / "ledger.json").empty
    assert not Path(os.path.expanduser("~/.ssh/mn")).exists()  # Cluster Edition's control directory went to the run's


def test_a_lost_server_stops_the_run_and_the_next_agent_cleans_what_it_left(tmp_path, second):
    """The agent on the second server dies mid-run (its ledger stays behind, as after a crash of that server's side):
    the run stops with the server's name instead of counting an outage, and the cleanup that follows starts a new
    agent there, which removes what the old one's ledger lists: the origins and the hosts' shells."""
    scenario = demo_over_two_servers(tmp_path, second)
    before_here, before_there = root_interfaces(), interfaces_there()
    run_dir = tmp_path / "run"
    said = []

    def kill_the_agent():
        wait_event(run_dir, lambda e: e["kind"] == "run_started", 30, "the start of the load")
        owner = json.loads((STATE_DIR / "served" / "owner.json").read_text())
        os.kill(owner["pid"], 9)

    threading.Thread(target=kill_the_agent, daemon=True).start()
    with pytest.raises(LabError, match="lost server lab2"):
        run(scenario, run_dir, live=False, say=said.append)
    origins = [e["pid"] for e in read_events(run_dir) if e["kind"] == "service_ready" and e["node"].startswith("o")]
    assert len(origins) == 3 and not any(alive(pid) for pid in origins), "an origin outlived the lab on the second server"
    assert any("server lab2: process" in line for line in " ".join(said).split(", ")), said
    assert root_interfaces() == before_here and interfaces_there() == before_there
    assert Ledger.open(STATE_DIR / "ledger.json").empty and Ledger.open(STATE_DIR / "served" / "ledger.json").empty


def test_a_cable_cut_to_the_second_server_stops_the_run_and_its_agent_cleans_up_alone(tmp_path, second):
    """The underlay link is set down mid-run, as if the cable between the two machines were pulled. Every ssh
    connection to the second server dies within its keep-alives (2 s x 3); the first fault that needs a shell there
    (o1's cable at 1.5 s) must raise 'lost server', not wait forever on a dead terminal. The agent there hears no
    heartbeat and removes the origins and shells by itself; this side removes everything of its own."""
    import subprocess
    import time

    scenario = demo_over_two_servers(tmp_path, second)
    before_here, before_there = root_interfaces(), interfaces_there()
    run_dir = tmp_path / "run"
    cut = {}

    def pull_the_cable():
        wait_event(run_dir, lambda e: e["kind"] == "run_started", 30, "the start of the load")
        cut["t"] = time.time()
        subprocess.run(["ip", "link", "set", LINK[0], "down"], check=True)

    threading.Thread(target=pull_the_cable, daemon=True).start()
    try:
        with pytest.raises(LabError, match="lost server lab2"):
            run(scenario, run_dir, live=False, say=lambda *a: None)
        stopped = time.time()
        origins = [e["pid"] for e in read_events(run_dir) if e["kind"] == "service_ready" and e["node"].startswith("o")]
        served = STATE_DIR / "served" / "ledger.json"
        wait_until(lambda: not any(alive(pid) for pid in origins) and Ledger.open(served).empty, 15,
                   "the agent's own cleanup on the second server")
        assert stopped - cut["t"] < 20, f"the run took {stopped - cut['t']:.1f} s to stop after the cut"
    finally:
        subprocess.run(["ip", "link", "set", LINK[0], "up"], check=True)
    assert root_interfaces() == before_here and interfaces_there() == before_there
    assert Ledger.open(STATE_DIR / "ledger.json").empty and Ledger.open(STATE_DIR / "served" / "ledger.json").empty


def test_cluster_edition_with_this_machine_alone(tmp_path):
    """servers = ["localhost"]: the same Cluster Edition classes (RemoteHost, the Linux bridge, the tunnel link) with
    nothing remote. A crash and its repair act on the local processes; no ssh, no agent, no clocks to correct."""
    path = tmp_path / "alone.toml"
    path.write_text('duration = 4\n[topology]\nname = "single_lb"\n[load]\nrate = 20\n[balancer.health]\ninter = 0.3\n'
                    '[[faults]]\nat = 1\naction = "crash"\ntarget = "o1"\n[[faults]]\nat = 2.5\naction = "restart"\ntarget = "o1"\n'
                    '[cluster]\nservers = ["localhost"]\n')
    before = root_interfaces()
    run_dir = run(load_scenario(path), tmp_path / "run", live=False, say=lambda *a: None)
    events = read_events(run_dir)
    assert set(next(e for e in events if e["kind"] == "lab_built")["servers"].values()) == {"localhost"}
    ready = [e["pid"] for e in events if e["kind"] == "service_ready" and e["node"] == "o1"]
    crash = next(e for e in events if e["kind"] == "fault_applied" and e["action"] == "crash")
    assert crash["killed"] == ready[:1] and len(ready) == 2
    finished = [e for e in events if e["kind"] == "request_finished"]
    # o1's third of 40 req/s fails from the crash until it is detected (3 probes 0.3 s apart and their timeouts)
    assert len(finished) == 160 and sum(e["ok"] for e in finished) >= 140
    assert {e.get("upstream") for e in finished if not e["ok"]} <= {"o1"}
    assert json.loads((run_dir / "clocks.json").read_text())["servers"] == {}
    assert root_interfaces() == before and Ledger.open(STATE_DIR / "ledger.json").empty


def test_doctor_checks_each_step_and_names_what_is_missing(tmp_path, second):
    from lab.core.cluster import LOCAL, ClusterSettings
    from lab.net.cluster_check import check

    good = ClusterSettings(servers=(LOCAL, "lab2"), addresses={"lab2": second.address}, ssh_config=str(second.ssh_config))
    found = check(good, "lab2")
    assert [f.name.split(": ")[1] for f in found] == ["address", "ssh", "root", "halab", "agent", "programs", "namespaces", "tunnel",
                                                       "firewall", "mtu", "clock"]
    assert all(f.available for f in found), [f for f in found if not f.available]
    assert "vxlan" in found[7].detail and "1500" in found[9].detail
    no_key = check(ClusterSettings(servers=(LOCAL, "lab2"), addresses={"lab2": second.address}), "lab2")
    assert [f.available for f in no_key] == [True, False] and "authorized_keys" in no_key[1].detail
