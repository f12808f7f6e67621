"""A role added by one module and one registry entry (lab/services/echo.py) runs, dies and heals with its node."""
import dataclasses

from lab.net.faults import Faults
from lab.net.lab import Lab
from lab.net.roles import plan_services
from lab.runner import load_scenario
from lab.services.echo import EchoSettings

SCENARIO = "exercises/01-health-checks-and-failover/scenario.toml"
# a client round trip to the echo port: the bytes come back, or the error says why
PROBE = ("python3 -c \"import socket,sys; s=socket.create_connection((sys.argv[1], 7), 2); s.sendall(b'hello halab'); "
         "print('echoed', s.recv(64).decode())\" {} 2>&1 | tail -1")


def test_echo_runs_on_every_origin_dies_with_a_crash_and_comes_back_with_the_restart(tmp_path):
    base = load_scenario(SCENARIO)
    scenario = dataclasses.replace(base, faults=(), roles={**base.roles, "echo": EchoSettings(enabled=True)})
    with Lab(scenario, tmp_path / "run", say=lambda *a: None) as lab:
        lab.start_all(plan_services(scenario, lab.addresses, lab.run_dir))
        c1 = lab.net["c1"]
        before = {o: c1.cmd(PROBE.format(lab.addresses[o])).strip() for o in ("o1", "o2", "o3")}
        faults = Faults(lab)
        faults.apply("crash", "o2")
        crashed = c1.cmd(PROBE.format(lab.addresses["o2"])).strip()
        faults.apply("restart", "o2")
        after = c1.cmd(PROBE.format(lab.addresses["o2"])).strip()
    assert before == {o: "echoed hello halab" for o in ("o1", "o2", "o3")}
    assert "Connection refused" in crashed
    assert after == "echoed hello halab"
