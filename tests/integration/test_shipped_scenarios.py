"""Every lesson scenario that grades itself passes its own [expect] checks on the real network.

A lesson whose own scenario fails its checks teaches students to distrust
every number halab shows them. Runs are shared with the other test files
through the ``shipped`` fixture, so each scenario runs once per session.
"""
from pathlib import Path

import pytest

from lab.analysis import report

# A scenario that runs a starter (an implement-it step) cannot run until a student fills it in; halab
# grade runs it with the solution (tests/integration/test_grade.py).
GRADED = sorted(str(p) for p in Path("exercises").glob("*/*.toml") if "[expect]" in p.read_text() and "starter/" not in p.read_text())


def test_the_graded_scenarios_are_found():
    assert len(GRADED) >= 8


@pytest.mark.parametrize("path", GRADED)
def test_a_shipped_scenario_passes_its_own_checks(shipped, path):
    metrics = report.build(Path(shipped(path)))
    assert metrics.checks, f"{path} has an [expect] table but no check was evaluated"
    failed = [f"{c.name}: {c.detail}" for c in metrics.checks if not c.passed]
    assert failed == [], f"{path}: " + "; ".join(failed)
