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

