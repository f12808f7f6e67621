"""``halab cli``, as a student types into it: node commands print their output, lab verbs act, exit cleans up.

Piped stdin stands in for the keyboard. (The CLI once failed to start at all,
and later printed nothing for node commands: both went unnoticed because no
test typed into it.)
"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TYPED = "\n".join([
    "nat1 nft list table ip halab_l4",
    "c1 curl -s http://10.4.0.2/",
    "c1 curl -s http://10.4.0.2/",
    "drain o3",
    "crash o1",
    "broken",
    "stats",
    "exit",
]) + "\n"


def test_a_student_s_cli_session_shows_node_output_and_runs_lab_verbs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lab.cli", "cli", "--scenario", "exercises/07-l4-vs-l7/side-by-side.toml",
                           "--runs", str(tmp_path / "runs")], input=TYPED, capture_output=True, text=True, timeout=120, cwd=ROOT)
    out = done.stdout + done.stderr  # Mininet prints node output through its logger (stderr)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "numgen inc mod 3 map @slots" in out  # a node command's own output
    assert out.count("served by o") == 2 and "served by o1" in out and "served by o2" in out
    assert "done: crash o1" in out and "o1 crashed" in out
    assert "nat1-l4: mode nat" in out
    assert "nat1-l4: {'server': 'o3', 'drain': True, 'weight': 1}" in out and "lb1-balancer: {" in out
