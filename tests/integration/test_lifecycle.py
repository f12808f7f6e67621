"""One lab per machine, bad input does not hurt it, and a crashed lab is cleaned up exactly."""
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab.net.lab import Lab
from lab.net.roles import plan_services
from lab.net.state import LabBusy, LabLock, Ledger, clean
from lab.runner import load_scenario

from .conftest import DEMO, alive, root_interfaces

HELD = """
import sys, time
from pathlib import Path
from lab.runner import load_scenario
from lab.net.lab import Lab
from lab.net.roles import plan_services
s = load_scenario(sys.argv[1])
lab = Lab(s, Path(sys.argv[2]), say=lambda *a: None).__enter__()
lab.start_all(plan_services(s, lab.addresses, lab.run_dir))
print("READY", flush=True)
time.sleep(600)
"""


@pytest.fixture
def lab(tmp_path):
    scenario = load_scenario(DEMO)
    with Lab(scenario, tmp_path / "run", say=lambda *a: None) as lab:
        lab.start_all(plan_services(scenario, lab.addresses, lab.run_dir))
        yield lab


def test_a_second_lab_is_refused_with_the_first_named(lab):
    with pytest.raises(LabBusy, match=rf"pid \d+, scenario 'failover-basics'.*{lab.run_dir.name}"):
        LabLock().acquire("other", "/tmp/other")


def test_malformed_request_gets_a_specific_400_and_the_lab_keeps_serving(lab):
    c1 = lab.net["c1"]
    probe = ("import socket; s = socket.create_connection(('10.0.0.2', 80), timeout=3); "
             "s.sendall(b'GET / HTTP/1.1\\r\\nHost x\\r\\n\\r\\n'); print(s.recv(4096).decode())")
    out = c1.cmd(sys.executable, "-c", f'"{probe}"')
    assert "HTTP/1.1 400 Bad Request" in out and "has no colon" in out
    ok = c1.cmd("curl -s -m 3 -D - http://10.0.0.2/")
    assert "HTTP/1.1 200 OK" in ok and "X-Served-By: o" in ok and "Via: 1.1 lb1" in ok
    events = [line for line in (lab.run_dir / "events" / "lb1-balancer.jsonl").read_text().splitlines() if "request_rejected" in line]
    assert len(events) == 1 and "has no colon" in events[0]


def test_pause_keeps_ping_and_handshake_but_not_http(lab):
    from lab.net.faults import Faults

    faults = Faults(lab)
    faults.apply("pause", "o3")
    lb = lab.net["lb1"]
    assert " 0% packet loss" in lb.cmd("ping -c 2 -W 1 10.0.0.13")
    tcp = lb.cmd(sys.executable, "-c", '"import socket; socket.create_connection((\'10.0.0.13\', 80), timeout=2); print(\'CONNECTED\')"')
    assert "CONNECTED" in tcp
    http = lb.cmd("curl -s -m 1 -o /dev/null -w '%{http_code}' http://10.0.0.13/health")
    assert http.strip() == "000"
    faults.restore()
    assert lb.cmd("curl -s -m 2 http://10.0.0.13/health").strip() == "ok"


def test_clean_after_a_crashed_lab_removes_exactly_what_it_made(tmp_path):
    before = root_interfaces()
    child = subprocess.Popen([sys.executable, "-c", HELD, DEMO, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "READY"
        ledger = Ledger.open(Path("/run/halab/ledger.json"))
        pids = [p["pid"] for p in ledger.data["processes"]]
        made = {i["name"] for i in ledger.data["interfaces"]}
        assert len(pids) >= 10 and "s1" in made and all(alive(p) for p in pids)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert "s1" in root_interfaces(), "a killed lab leaves its switch behind (that is what clean is for)"
    removed = clean()
    assert any("s1" in r for r in removed)
    assert not [p for p in pids if alive(p)]
    assert root_interfaces() - before == set()
    assert clean() == []


def test_ovsbr_without_open_vswitch_says_what_to_do():
    from lab.net import features
    from lab.net.lab import LabError, switch_class

    if features.probe("ovs").available:
        assert switch_class("ovsbr") is not None
    else:
        with pytest.raises(LabError, match=r"switch 'ovsbr' needs Open vSwitch running: .*Use switch = \"lxbr\""):
            switch_class("ovsbr")
