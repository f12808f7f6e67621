"""An instructor's hidden pack run against a class: fault first, then the checks, scored per student from what the network did."""
from pathlib import Path

from lab import grade_pack

EXAMPLE = Path("docs/grading")


def test_the_example_pack_tells_a_good_hand_in_from_a_shortcut(tmp_path):
    pack = grade_pack.load_pack(EXAMPLE / "example-pack")
    students = grade_pack.load_class(EXAMPLE / "example-class.csv")
    rows = grade_pack.grade_class(pack, students, tmp_path, say=lambda *a: None)
    score = {s: (sum(r.earned for r in rows if r.student == s), sum(r.points for r in rows if r.student == s)) for s in students}
    by = {(r.student, r.check): r for r in rows}
    assert score["alice"] == (8, 8), [(r.check, r.detail) for r in rows if r.student == "alice" and r.earned < r.points]
    # bob always takes the first candidate: o1 carries everything while it is up
    assert by[("bob", "max_share o1")].earned == 0 and "o1 served" in by[("bob", "max_share o1")].detail
    assert all(Path(r.run_dir, "events").is_dir() for r in rows)  # every run kept for review
    csv_text = grade_pack.sheet_csv(rows)
    assert csv_text.splitlines()[0] == "student,scenario,check,points,earned,measured,run" and len(csv_text.splitlines()) == len(rows) + 1
