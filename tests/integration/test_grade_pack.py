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
    assert score["alice"] == (18, 18), [(r.check, r.detail) for r in rows if r.student == "alice" and r.earned < r.points]
    # bob's two draws may be the same server: with o2 and o3 left, o3 gets about a quarter, not the tenth p2c gives it
    bob_o3 = by[("bob", "two-left", "max_share o3")]
    assert bob_o3.earned == 0 and float(bob_o3.detail.split()[2].rstrip("%")) > 18, bob_o3.detail
    assert float(by[("alice", "two-left", "max_share o3")].detail.split()[2].rstrip("%")) < 15
    # both predicted 0.10 for o3: right for alice's code, wrong for bob's, judged on each one's own run
    assert by[("alice", "two-left", "predict share o3")].earned == 2
    bob_guess = by[("bob", "two-left", "predict share o3")]
    assert bob_guess.earned == 0 and bob_guess.detail.startswith("predicted 0.1, measured 0.") and "no)" in bob_guess.detail
    assert score["bob"][0] <= 13
    # carol's starter is not run, and every check says why
    assert score["carol"] == (0, 18) and all("not implemented yet" in r.detail and not r.run_dir for r in rows if r.student == "carol")
    assert all(Path(r.run_dir, "events").is_dir() for r in rows if r.student != "carol")  # every run kept for review
    written = grade_pack.written_answers(pack, students)
    assert [(w[0], w[1], w[2]) for w in written] == [("alice", "two-left", "why"), ("bob", "two-left", "why")]
    csv_text = grade_pack.sheet_csv(rows)
    assert csv_text.splitlines()[0] == "student,scenario,check,points,earned,measured,run" and len(csv_text.splitlines()) == len(rows) + 1
