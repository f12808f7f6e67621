"""An instructor's hidden pack run against a class: fault first, then the checks, scored per student from what the network did."""
from pathlib import Path

from lab import grade_pack

EXAMPLE = Path("docs/grading")


def test_the_example_pack_tells_the_solution_from_a_subtle_bug_and_an_empty_starter(tmp_path):
    pack = grade_pack.load_pack(EXAMPLE / "example-pack")
    students = grade_pack.load_class(EXAMPLE / "example-class.csv")
    assert len(pack.scenarios) == 3 and list(students) == ["alice", "bob", "carol"]
    rows = grade_pack.grade_class(pack, students, tmp_path, say=lambda *a: None)
    score = {s: (sum(r.earned for r in rows if r.student == s), sum(r.points for r in rows if r.student == s)) for s in students}
    by = {(r.student, r.scenario, r.check): r for r in rows}
    assert score["alice"] == (16, 16), [(r.check, r.detail) for r in rows if r.student == "alice" and r.earned < r.points]
    # bob's two draws may be the same server: with o2 and o3 left, o3 gets about a quarter, not the tenth p2c gives it
    bob_o3 = by[("bob", "two-left", "max_share o3")]
    assert bob_o3.earned == 0 and float(bob_o3.detail.split()[2].rstrip("%")) > 18, bob_o3.detail
    assert float(by[("alice", "two-left", "max_share o3")].detail.split()[2].rstrip("%")) < 15
    assert score["bob"][0] <= 13
    # carol's starter is not run, and every check says why
    assert score["carol"] == (0, 16) and all("not implemented yet" in r.detail and not r.run_dir for r in rows if r.student == "carol")
    assert all(Path(r.run_dir, "events").is_dir() for r in rows if r.student != "carol")  # every run kept for review
    csv_text = grade_pack.sheet_csv(rows)
    assert csv_text.splitlines()[0] == "student,scenario,check,points,earned,measured,run" and len(csv_text.splitlines()) == len(rows) + 1
