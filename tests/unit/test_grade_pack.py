"""The instructor's pack and class files: every mistake named; the sheets as an instructor reads them."""
import pytest

from lab import grade_pack
from lab.analysis.predictions import Prediction
from lab.grade_pack import Pack, PackScenario, Row, Student


def pack_dir(tmp_path, toml, scenario='[balancer]\nalgorithm = "{student}"\n'):
    (tmp_path / "pack.toml").write_text(toml)
    (tmp_path / "s.toml").write_text(scenario)
    return tmp_path


def test_a_pack_is_read_with_its_points(tmp_path):
    p = grade_pack.load_pack(pack_dir(tmp_path, 'student_file = "a.py:A"\n[[scenario]]\nfile = "s.toml"\npoints = { availability_min = 2 }\n'))
    assert p.student_file == "a.py:A" and p.scenarios[0].points == {"availability_min": 2} and p.title == tmp_path.name


@pytest.mark.parametrize("toml, scenario, says", [
    ('student_file = "a.py"\n[[scenario]]\nfile = "s.toml"\n', None, "must name the file and the class"),
    ('student_file = "a.py:A"\n', None, r"no \[\[scenario\]\] to run"),
    ('student_file = "a.py:A"\n[[scenario]]\nfile = "missing.toml"\n', None, "no such file"),
    ('student_file = "a.py:A"\n[[scenario]]\nfile = "s.toml"\n', "duration = 5\n", "never runs the student's code"),
    ('student_file = "a.py:A"\nscenarios = 1\n', None, "unknown keys scenarios"),
    ('student_file = "a.py:A"\nseam = "timer"\n[[scenario]]\nfile = "s.toml"\n', None, "seam: got 'timer', expected one of algorithm, "
     "health_rule, backup_timer"),
    ('student_file = "a.py:A"\nseam = "backup_timer"\n[[scenario]]\nfile = "s.toml"\n', "[vrrp]\nbackup_timer = \"x.py:X\"\n",
     r"set backup_timer = \"\{student\}\" in \[vrrp\]"),
    ('student_file = "a.py:A"\n[[scenario]]\nfile = "s.toml"\npoints = { x = 1.5 }\n', None, "whole numbers of points"),
    ('student_file = "a.py:A"\n[[scenario]]\nfile = "s.toml"\npredict = { speed = { within = 1 } }\n', None,
     r"scenario\[0\]: predict 'speed': no such measure"),
    ('student_file = "a.py:A"\n[[scenario]]\nfile = "s.toml"\npredict = 3\n', None, r"scenario\[0\].predict: a table"),
])
def test_each_pack_mistake_is_named(tmp_path, toml, scenario, says):
    folder = pack_dir(tmp_path, toml, *([scenario] if scenario else []))
    with pytest.raises(ValueError, match=says):
        grade_pack.load_pack(folder)


def test_a_pack_names_the_seam_its_students_fill(tmp_path):
    p = grade_pack.load_pack(pack_dir(tmp_path, 'student_file = "t.py:T"\nseam = "health_rule"\n[[scenario]]\nfile = "s.toml"\n',
                                      '[balancer.health]\nrule = "{student}"\n'))
    assert p.seam.setting == "balancer.health.rule"
    assert grade_pack.load_pack(pack_dir(tmp_path, 'student_file = "a.py:A"\n[[scenario]]\nfile = "s.toml"\n')).seam.method == "choose"


def test_a_class_is_a_folder_of_folders_or_a_csv(tmp_path):
    (tmp_path / "ann").mkdir()
    (tmp_path / "ben").mkdir()
    assert grade_pack.load_class(tmp_path) == {"ann": Student(tmp_path / "ann"), "ben": Student(tmp_path / "ben")}
    roster = tmp_path / "class.csv"
    roster.write_text("name,folder,answers\nAnn Lee,ann,ann-answers.toml\n# dropped out\nBen,ben\n")
    assert grade_pack.load_class(roster) == {"Ann Lee": Student((tmp_path / "ann").resolve(), (tmp_path / "ann-answers.toml").resolve()),
                                             "Ben": Student((tmp_path / "ben").resolve())}
    roster.write_text("Cid,cid\n")
    with pytest.raises(ValueError, match="class.csv:1: no folder"):
        grade_pack.load_class(roster)


def test_a_student_whose_file_does_not_load_scores_zero_with_the_reason_and_is_not_run(tmp_path):
    folder = pack_dir(tmp_path, 'student_file = "mine.py:Mine"\n[[scenario]]\nfile = "s.toml"\n',
                      '[balancer]\nalgorithm = "{student}"\n[expect]\navailability_min = 0.9\nmax_share = { o3 = 0.2 }\n')
    (tmp_path / "cid").mkdir()
    (tmp_path / "cid" / "mine.py").write_text("def broken(:\n")
    pack = grade_pack.load_pack(folder)
    pack = Pack(pack.title, pack.student_file, (PackScenario(pack.scenarios[0].file, {}, (Prediction("share o3", 0.05, 2),)),))
    rows = grade_pack.grade_class(pack, {"cid": Student(tmp_path / "cid")}, tmp_path / "runs")
    assert [(r.check, r.earned, r.run_dir) for r in rows] == [("availability_min", 0, ""), ("max_share o3", 0, ""),
                                                              ("predict share o3", 0, "")]
    assert "mine.py:1: syntax error" in rows[0].detail


def test_the_sheets_total_per_student():
    rows = [Row("ann", "s", "availability_min", 2, 2, "ok"), Row("ann", "s", "max_share o3", 3, 0, "o3 served 30% | x"),
            Row("ben", "s", "availability_min", 2, 2, "ok")]
    md = grade_pack.sheet_markdown(Pack("T", "a.py:A", ()), rows)
    assert "| ann | 2/5 |" in md and "| ben | 2/2 |" in md and "o3 served 30% / x" in md


def test_a_students_answers_are_read_and_every_mistake_said(tmp_path):
    pack = Pack("T", "a.py:A", (), answers_file="answers.toml")
    (tmp_path / "answers.toml").write_text('[two-left]\n"share o3" = 0.1\nwhy = "o3 | is slow"\n')
    assert grade_pack.read_answers(pack, Student(tmp_path)) == ({"two-left": {"share o3": 0.1, "why": "o3 | is slow"}}, "")
    assert grade_pack.read_answers(pack, Student(tmp_path / "nobody")) == ({}, "no answers file answers.toml")
    (tmp_path / "bad.toml").write_text("x = 1\n")
    assert "x is not a table" in grade_pack.read_answers(pack, Student(tmp_path, tmp_path / "bad.toml"))[1]
    written = grade_pack.written_answers(pack, {"ann": Student(tmp_path)})
    assert written == [("ann", "two-left", "why", "o3 | is slow")]
    md = grade_pack.sheet_markdown(pack, [Row("ann", "two-left", "predict share o3", 2, 2, "predicted 0.1")], written)
    assert "## Written answers" in md and "| ann | two-left | why | o3 / is slow |" in md
