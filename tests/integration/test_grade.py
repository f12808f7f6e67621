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


def ready_event(run_dir, node_service):
    lines = (run_dir / "events" / f"{node_service}.jsonl").read_text().splitlines()
    return next(line for line in lines if '"service_ready"' in line)


def test_the_solution_of_exercise_01_scores_full_marks_on_the_network(tmp_path):
    results = grade.grade(grade.find("01"), Path("exercises/01-health-checks-and-failover/solution"), tmp_path / "runs", say=lambda *a: None)
    assert all(r.earned == r.points for r in results), [(r.check, r.measured) for r in results if r.earned < r.points]
    by_check = {r.check: r for r in results}
    assert "detection times" in by_check["on the network: max_detection"].measured  # judged on the run's own detections
    run_dir = next((tmp_path / "runs").iterdir())
    assert '"health_rule":"my_rise_fall"' in ready_event(run_dir, "lb1-balancer")  # the student's rule counted the probes


def test_the_solution_of_exercise_03_scores_full_marks_on_the_network(tmp_path):
    results = grade.grade(grade.find("03"), Path("exercises/03-vrrp-redundancy/solution"), tmp_path / "runs", say=lambda *a: None)
    assert all(r.earned == r.points for r in results), [(r.check, r.measured) for r in results if r.earned < r.points]
    by_check = {r.check: r for r in results}
    assert by_check["gw2, the highest-priority backup, takes over from gw1"].measured == "gw2"
    run_dir = next((tmp_path / "runs").iterdir())
    assert all('"backup_timer":"my_timer"' in ready_event(run_dir, f"{gw}-vrrp") for gw in ("gw1", "gw2", "gw3"))
