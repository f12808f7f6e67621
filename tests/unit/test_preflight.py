"""Before a lab is built: can a Mininet host start here? A clear sentence instead of a hang (lab.net.features.preflight)."""
import subprocess

import pytest

from lab.net import features
from lab.net.errors import LabError


def fake_run(returncode=0, stderr="", timeout=False):
    def run(args, timeout_=None, **kw):
        if timeout:
            raise subprocess.TimeoutExpired(args, 5)
        return subprocess.CompletedProcess(args, returncode, "", stderr)
    return lambda args, timeout=5.0: run(args, timeout)


def test_a_failing_mnexec_is_named_with_what_it_said(monkeypatch):
    monkeypatch.setattr(features.shutil, "which", lambda cmd: "/usr/bin/mnexec")
    monkeypatch.setattr(features, "_run", fake_run(1, "remount: Invalid argument"))
    monkeypatch.setattr(features, "in_chroot", lambda: True)
    with pytest.raises(LabError, match=r"cannot create a network namespace here \(mnexec -n: remount: Invalid argument\); "
                                       r"this looks like a chroot: run halab in a VM"):
        features.preflight()


def test_a_hanging_mnexec_is_cut_at_the_timeout(monkeypatch):
    monkeypatch.setattr(features.shutil, "which", lambda cmd: "/usr/bin/mnexec")
    monkeypatch.setattr(features, "_run", fake_run(timeout=True))
    with pytest.raises(LabError, match="did not finish within 5 s"):
        features.preflight()


def test_no_mininet_says_what_to_install(monkeypatch):
    monkeypatch.setattr(features.shutil, "which", lambda cmd: None)
    with pytest.raises(LabError, match="apt install mininet"):
        features.preflight()



# ---- halab doctor: the lessons and the Python ------------------------------------------------
def test_every_lesson_is_listed_with_what_it_needs_from_the_kernel():
    from pathlib import Path

    assert sorted(features.LESSON_NEEDS) == sorted(p.name for p in Path("exercises").iterdir() if p.is_dir())
    for needs in features.LESSON_NEEDS.values():
        assert all(name in features.FEATURES for name, _ in needs)


def test_a_lesson_is_ready_degraded_or_blocked_by_what_the_kernel_has():
    have = [features.Feature("nftables", False, "no"), features.Feature("bonding", False, "no")]
    by_name = {f.name: f for f in features.lessons(have)}
    assert not by_name["03-vrrp-redundancy"].available and "nftables" in by_name["03-vrrp-redundancy"].detail
    assert by_name["04-bonding"].available and "userspace" in by_name["04-bonding"].detail
    assert by_name["01-health-checks-and-failover"].available
    full = {f.name: f for f in features.lessons([features.Feature("nftables", True, ""), features.Feature("bonding", True, "")])}
    assert full["04-bonding"].detail == "ready (uses bonding)"


def test_an_old_python_is_named_with_the_version_halab_needs(monkeypatch):
    monkeypatch.setattr(features, "preflight", lambda: None)
    old = features.environment(python=(3, 9))[0]
    assert not old.available and "needs 3.10 or newer" in old.detail
    assert features.environment(python=(3, 13))[0].available


def test_a_delay_without_netem_is_refused_before_anything_is_built(monkeypatch):
    import topologies
    from lab.core.scenario import parse_scenario

    asked = []
    monkeypatch.setattr(features, "probe", lambda name: asked.append(name) or features.Feature(name, False, "Error: unknown qdisc"))
    table = {"name": "d", "duration": 5, "topology": {"name": "proxy_chain", "delay_ms": 20}}
    with pytest.raises(LabError, match=r"needs the kernel's netem, which this machine lacks \(Error: unknown qdisc\).*latency_ms"):
        features.resolve(parse_scenario(table, "t", topologies.lookup), say=lambda *a: None)
    table["topology"]["delay_ms"] = 0
    features.resolve(parse_scenario(table, "t", topologies.lookup), say=lambda *a: None)
    assert asked == ["netem"]  # no delay, no probe
