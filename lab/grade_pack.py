"""``halab grade --pack DIR --class DIR|CSV``: an instructor's hidden scenarios, run against every student's code.

A *pack* is a folder the students never see: ``pack.toml`` and scenario
files with ``[expect]`` checks and faults. Each scenario names the student's
class where its seam is set (``algorithm = "{student}"`` in ``[balancer]``,
``rule = "{student}"`` in ``[balancer.health]``, ``backup_timer =
"{student}"`` in ``[vrrp]``); the grader puts each student's file there, runs the scenario on the network (fault, then assert: the checks are
judged on what the network did after the hidden faults) and scores every
check. ``pack.toml``::

    title = "Balancing under failures"
    student_file = "least_loaded_of_two.py:PowerOfTwo"   # what each student hands in
    seam = "algorithm"                                    # or health_rule, backup_timer (default: algorithm)

    answers_file = "answers.toml"                         # each student's predictions (default: this name)

    [[scenario]]
    file = "slow-and-crash.toml"
    points = { availability_min = 2, "max_share o3" = 3 }   # per check; 1 when not named
    predict = { "share o3" = { within = 0.05, points = 2 } } # scored against the student's own run

The class is a folder of student folders (one per student, named by the
folder, the answers file inside it) or a CSV with ``name,folder[,answers]``
rows. A student's file that does not load scores nothing for that scenario,
with the reason, and is not run. Predictions (``lab.analysis.predictions``)
are judged on the run of the student's own code: a student who understands
their code predicts what it does. Out: a grade sheet as CSV (one row per
student, scenario and check) and Markdown (totals per student, then every
check, then every written answer), and every run directory for review.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import tomllib

from lab.analysis.predictions import Prediction, answers_of, judge, measured, parse_prediction, texts
from lab.core.plugins import SEAMS, Interface, PluginError, check

PLACEHOLDER = "{student}"


@dataclass(frozen=True)
class PackScenario:
    file: Path
    points: Mapping[str, int] = field(default_factory=dict)
    predict: tuple[Prediction, ...] = ()  # what each student's answers file must predict of this scenario


@dataclass(frozen=True)
class Pack:
    title: str
    student_file: str  # "file.py:Class", relative to each student's folder
    scenarios: tuple[PackScenario, ...]
    seam: Interface = SEAMS["algorithm"]  # which of halab's seams the class fills
    answers_file: str = "answers.toml"  # in each student's folder, unless the class CSV names another


@dataclass(frozen=True)
class Student:
    folder: Path
    answers: Path | None = None  # the CSV's third column; None: the pack's answers_file in the folder


@dataclass
class Row:
    student: str
    scenario: str
    check: str
    points: int
    earned: int
    detail: str
    run_dir: str = ""


def load_pack(folder: Path) -> Pack:
    """``pack.toml`` read and checked: every mistake names the file and the key."""
    path = folder / "pack.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"{path}: cannot read the pack: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
    unknown = set(data) - {"title", "student_file", "seam", "answers_file", "scenario"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {', '.join(sorted(unknown))} (known: title, student_file, seam, answers_file, "
                         "[[scenario]])")
    seam = SEAMS.get(str(data.get("seam", "algorithm")))
    if seam is None:
        raise ValueError(f"{path}: seam: got {data['seam']!r}, expected one of {', '.join(SEAMS)}")
    student_file = data.get("student_file", "")
    if ".py:" not in student_file:
        raise ValueError(f"{path}: student_file must name the file and the class each student hands in, e.g. "
                         "\"least_loaded_of_two.py:PowerOfTwo\"")
    scenarios = []
    for i, entry in enumerate(data.get("scenario", [])):
        file = folder / str(entry.get("file", ""))
        if not file.is_file():
            raise ValueError(f"{path}: scenario[{i}].file: no such file {file}")
        if PLACEHOLDER not in file.read_text(encoding="utf-8"):
            *table, key = seam.setting.split(".")
            raise ValueError(f"{file}: the scenario never runs the student's code: set {key} = \"{PLACEHOLDER}\" in [{'.'.join(table)}]")
        points = entry.get("points", {})
        if not all(isinstance(v, int) and v >= 0 for v in points.values()):
            raise ValueError(f"{path}: scenario[{i}].points: whole numbers of points, e.g. {{ availability_min = 2 }}")
        predict = entry.get("predict", {})
        if not isinstance(predict, dict):
            raise ValueError(f"{path}: scenario[{i}].predict: a table, e.g. {{ \"share o3\" = {{ within = 0.05, points = 2 }} }}")
        predictions = tuple(parse_prediction(name, spec, f"{path}: scenario[{i}]") for name, spec in predict.items())
        scenarios.append(PackScenario(file, points, predictions))
    if not scenarios:
        raise ValueError(f"{path}: no [[scenario]] to run")
    return Pack(str(data.get("title", folder.name)), student_file, tuple(scenarios), seam, str(data.get("answers_file", "answers.toml")))


def load_class(where: Path) -> dict[str, Student]:
    """Student name -> their hand-in: the sub-folders of a folder, or the rows ``name,folder[,answers]`` of a CSV (relative to it)."""
    if where.is_dir():
        return {p.name: Student(p) for p in sorted(where.iterdir()) if p.is_dir()}
    students = {}
    for i, row in enumerate(csv.reader(where.read_text(encoding="utf-8").splitlines()), 1):
        if not row or row[0].startswith("#") or row[0].strip().lower() == "name":
            continue
        if len(row) < 2:
            raise ValueError(f"{where}:{i}: expected 'name,folder'")
        folder = (where.parent / row[1].strip()).resolve()
        if not folder.is_dir():
            raise ValueError(f"{where}:{i}: no folder {folder} for {row[0].strip()}")
        answers = (where.parent / row[2].strip()).resolve() if len(row) > 2 and row[2].strip() else None
        students[row[0].strip()] = Student(folder, answers)
    return students


def read_answers(pack: Pack, student: Student) -> tuple[dict[str, dict[str, Any]], str]:
    """A student's answers by scenario, and why there are none ('' when read)."""
    path = student.answers or student.folder / pack.answers_file
    try:
        return answers_of(path.read_text(encoding="utf-8"), str(path)), ""
    except OSError:
        return {}, f"no answers file {path.name}"
    except ValueError as e:
        return {}, str(e)


def scenario_for(pack_scenario: PackScenario, reference: str, student: str) -> Any:
    import topologies
    from lab.core.scenario import parse_scenario

    data = tomllib.loads(pack_scenario.file.read_text(encoding="utf-8").replace(PLACEHOLDER, reference))
    data["name"] = f"{student}-{data.get('name', pack_scenario.file.stem)}"
    return parse_scenario(data, str(pack_scenario.file), topologies.lookup)


def expected_checks(pack_scenario: PackScenario) -> list[str]:
    """The check names a scenario's [expect] table will produce (what a student who cannot run still scores 0 on)."""
    expect = tomllib.loads(pack_scenario.file.read_text(encoding="utf-8")).get("expect", {})
    names = [k for k, v in expect.items() if k != "max_share" and v not in (None, False)]
    return names + [f"max_share {origin}" for origin in sorted(expect.get("max_share", {}))]


def grade_class(pack: Pack, students: Mapping[str, Student], runs: Path, say: Any = print) -> list[Row]:
    from lab.analysis import report
    from lab.runner import run

    rows: list[Row] = []
    file, _, cls = pack.student_file.rpartition(":")
    for student, hand_in in students.items():
        reference = f"{(hand_in.folder / file).resolve()}:{cls}"
        answers, missing = read_answers(pack, hand_in) if any(ps.predict for ps in pack.scenarios) else ({}, "")
        try:
            check(reference, pack.seam)
            broken = None
        except PluginError as e:
            broken = str(e)
        for ps in pack.scenarios:
            name = ps.file.stem
            if broken is not None:
                rows += [Row(student, name, c, ps.points.get(c, 1), 0, f"not run: {broken}") for c in expected_checks(ps)]
                rows += [Row(student, name, f"predict {p.name}", p.points, 0, f"not run: {broken}") for p in ps.predict]
                continue
            run_dir = runs / student / name
            say(f"{student}: {name} ({time.strftime('%H:%M:%S')})")
            run(scenario_for(ps, reference, student), run_dir, live=False, say=lambda *a: None)
            metrics = report.build(run_dir)
            for c in metrics.checks:
                points = ps.points.get(c.name, 1)
                rows.append(Row(student, name, c.name, points, points if c.passed else 0, c.detail, str(run_dir)))
            for p in ps.predict:
                ok, detail = judge(p, answers.get(name, {}).get(p.name), measured(metrics, p))
                rows.append(Row(student, name, f"predict {p.name}", p.points, p.points if ok else 0,
                                missing if missing and not answers else detail, str(run_dir)))
    return rows


def written_answers(pack: Pack, students: Mapping[str, Student]) -> list[tuple[str, str, str, str]]:
    """(student, scenario, question, text) of every written answer in the class: for the sheet, unscored."""
    return [(name, *t) for name, s in students.items() for t in texts(read_answers(pack, s)[0])]


def sheet_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["student", "scenario", "check", "points", "earned", "measured", "run"])
    for r in rows:
        writer.writerow([r.student, r.scenario, r.check, r.points, r.earned, r.detail, r.run_dir])
    return out.getvalue()


def sheet_markdown(pack: Pack, rows: list[Row], written: list[tuple[str, str, str, str]] = ()) -> str:
    students = list(dict.fromkeys(r.student for r in rows))
    lines = [f"# {pack.title}: grade sheet", "", "| student | score |", "|---|---|"]
    for s in students:
        mine = [r for r in rows if r.student == s]
        lines.append(f"| {s} | {sum(r.earned for r in mine)}/{sum(r.points for r in mine)} |")
    lines += ["", "| student | scenario | check | points | measured |", "|---|---|---|---|---|"]
    lines += [f"| {r.student} | {r.scenario} | {r.check} | {r.earned}/{r.points} | {r.detail.replace('|', '/')} |" for r in rows]
    if written:
        lines += ["", "## Written answers (not scored: yours to read)", "", "| student | scenario | question | answer |",
                  "|---|---|---|---|"]
        lines += [f"| {s} | {sc} | {q} | {' '.join(a.split()).replace('|', '/')} |" for s, sc, q, a in written]
    return "\n".join(lines) + "\n"
