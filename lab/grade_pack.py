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

    [[scenario]]
    file = "slow-and-crash.toml"
    points = { availability_min = 2, "max_share o3" = 3 }   # per check; 1 when not named

The class is a folder of student folders (one per student, named by the
folder) or a CSV with ``name,folder`` rows. A student's file that does not
load scores nothing for that scenario, with the reason, and is not run.
Out: a grade sheet as CSV (one row per student, scenario and check) and
Markdown (totals per student, then every check), and every run directory
for review.
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import tomllib

from lab.core.plugins import SEAMS, Interface, PluginError, check

PLACEHOLDER = "{student}"


@dataclass(frozen=True)
class PackScenario:
    file: Path
    points: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Pack:
    title: str
    student_file: str  # "file.py:Class", relative to each student's folder
    scenarios: tuple[PackScenario, ...]
    seam: Interface = SEAMS["algorithm"]  # which of halab's seams the class fills


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
    unknown = set(data) - {"title", "student_file", "seam", "scenario"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {', '.join(sorted(unknown))} (known: title, student_file, seam, [[scenario]])")
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
        scenarios.append(PackScenario(file, points))
    if not scenarios:
        raise ValueError(f"{path}: no [[scenario]] to run")
    return Pack(str(data.get("title", folder.name)), student_file, tuple(scenarios), seam)


def load_class(where: Path) -> dict[str, Path]:
    """Student name -> folder: the sub-folders of a folder, or the rows ``name,folder`` of a CSV (relative to it)."""
    if where.is_dir():
        return {p.name: p for p in sorted(where.iterdir()) if p.is_dir()}
    students = {}
    for i, row in enumerate(csv.reader(where.read_text(encoding="utf-8").splitlines()), 1):
        if not row or row[0].startswith("#") or row[0].strip().lower() == "name":
            continue
        if len(row) < 2:
            raise ValueError(f"{where}:{i}: expected 'name,folder'")
        folder = (where.parent / row[1].strip()).resolve()
        if not folder.is_dir():
            raise ValueError(f"{where}:{i}: no folder {folder} for {row[0].strip()}")
        students[row[0].strip()] = folder
    return students


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


def grade_class(pack: Pack, students: Mapping[str, Path], runs: Path, say: Any = print) -> list[Row]:
    from lab.analysis import report
    from lab.runner import run

    rows: list[Row] = []
    file, _, cls = pack.student_file.rpartition(":")
    for student, folder in students.items():
        reference = f"{(folder / file).resolve()}:{cls}"
        try:
            check(reference, pack.seam)
            broken = None
        except PluginError as e:
            broken = str(e)
        for ps in pack.scenarios:
            name = ps.file.stem
            if broken is not None:
                rows += [Row(student, name, c, ps.points.get(c, 1), 0, f"not run: {broken}") for c in expected_checks(ps)]
                continue
            run_dir = runs / student / name
            say(f"{student}: {name} ({time.strftime('%H:%M:%S')})")
            run(scenario_for(ps, reference, student), run_dir, live=False, say=lambda *a: None)
            for c in report.build(run_dir).checks:
                points = ps.points.get(c.name, 1)
                rows.append(Row(student, name, c.name, points, points if c.passed else 0, c.detail, str(run_dir)))
    return rows


def sheet_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["student", "scenario", "check", "points", "earned", "measured", "run"])
    for r in rows:
        writer.writerow([r.student, r.scenario, r.check, r.points, r.earned, r.detail, r.run_dir])
    return out.getvalue()


def sheet_markdown(pack: Pack, rows: list[Row]) -> str:
    students = list(dict.fromkeys(r.student for r in rows))
    lines = [f"# {pack.title}: grade sheet", "", "| student | score |", "|---|---|"]
    for s in students:
        mine = [r for r in rows if r.student == s]
        lines.append(f"| {s} | {sum(r.earned for r in mine)}/{sum(r.points for r in mine)} |")
    lines += ["", "| student | scenario | check | points | measured |", "|---|---|---|---|---|"]
    lines += [f"| {r.student} | {r.scenario} | {r.check} | {r.earned}/{r.points} | {r.detail.replace('|', '/')} |" for r in rows]
    return "\n".join(lines) + "\n"
