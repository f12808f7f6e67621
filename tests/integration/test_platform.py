"""A machine that cannot run Mininet gets a clear error within seconds, not a hang, and nothing is left behind."""
import os
import subprocess
import sys
import time
from pathlib import Path

from lab.net.state import STATE_DIR, Ledger

ROOT = Path(__file__).resolve().parents[2]
DEMO = "exercises/01-health-checks-and-failover/scenario.toml"


def test_a_plain_chroot_is_named_within_seconds_and_leaves_nothing(tmp_path):
    # A chroot whose / is not a mount point, built in a private mount namespace (unshare -m):
    # every bind mount below vanishes with that namespace when the command ends.
    root = tmp_path / "chroot"
    root.mkdir()
    lines = ["set -e", "mount --make-rprivate /"]
    for entry in sorted(os.listdir("/")):
        path = Path("/") / entry
        if path.is_symlink():
            lines.append(f"ln -s {os.readlink(path)} {root / entry}")
        elif path.is_dir() and entry not in ("lost+found",):
            lines.append(f"mkdir -p {root / entry} && mount --rbind /{entry} {root / entry}")
    halab = f"cd {ROOT} && timeout 60 {sys.executable} -m lab.cli run {DEMO} --quiet --no-plot --runs {tmp_path / 'runs'}"
    lines.append(f"chroot {root} /bin/sh -c '{halab}'")
    started = time.time()
    r = subprocess.run(["unshare", "-m", "sh", "-c", "\n".join(lines)], capture_output=True, text=True, timeout=90)
    took = time.time() - started
    said = r.stdout + r.stderr
    assert r.returncode != 0 and took < 20, (took, said[-800:])
    assert "cannot create a network namespace here" in said and "this looks like a chroot" in said, said[-800:]
    assert "Traceback" not in said
    # nothing left behind: no owner of the lab slot, an empty ledger, no switch of the demo
    assert not (STATE_DIR / "owner.json").exists()
    assert Ledger.open(STATE_DIR / "ledger.json").empty
    assert subprocess.run(["ip", "link", "show", "s1"], capture_output=True).returncode != 0
