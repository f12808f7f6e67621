"""halab grade on the network: the exercise's solution, run in the balancer, scores every point on what the network did."""
from pathlib import Path

from lab import grade


def test_the_solution_of_exercise_02_scores_full_marks_on_the_network(tmp_path):
    exercise = grade.find("02-balancing-algorithms")
    results = grade.grade(exercise, Path("exercises/02-balancing-algorithms/solution"), tmp_path / "runs", say=lambda *a: None)
    by_check = {r.check: r for r in results}
    slow = by_check["the slow origin o3 gets under half of round robin's third"]
    assert all(r.earned == r.points for r in results), [(r.check, r.measured) for r in results if r.earned < r.points]
    assert slow.measured.startswith("o3 ") and float(slow.measured.split()[1].rstrip("%")) < 16.7
    run_dirs = list((tmp_path / "runs").iterdir())
    # the balancer really ran the student's class: it named it (its ``name``) when it was ready
    ready = [line for line in (run_dirs[0] / "events" / "lb1-balancer.jsonl").read_text().splitlines() if '"service_ready"' in line]
    assert '"algorithm":"my_p2c"' in ready[0]
