"""``halab grade EXERCISE [--student DIR]``: a student's own code, checked alone and then on the network.

An implement-it exercise has a starter file with TODOs (``starter/``), a
solution (``solution/``) and the checks below. Grading runs in two parts,
as a student's code is judged in the p4 tutorials:

1. **unit checks**: the student's class called directly, with made-up
   servers and a seeded random generator, each check with what was expected
   and what came out (no root, a second);
2. **on the network**: the exercise's scenario with the student's class in
   the balancer (root), judged on what the network did: the report's shares
   and availability.

Each check scores its points or none, and the table says why. A starter
that is not filled in scores "not implemented yet" on every check instead
of crashing. Exit code 0 when every check passed.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import tomllib

from lab.core.algorithms.base import Algorithm, RequestInfo, Server
from lab.core.plugins import PluginError, check, sample_servers

EXERCISES_DIR = Path(__file__).resolve().parent.parent / "exercises"


@dataclass
class Result:
    check: str
    points: int
    earned: int
    expected: str
    measured: str


def servers(*active: int) -> list[Server]:
    out = sample_servers(len(active))
    for s, a in zip(out, active):
        s.active, s.weight = a, 1
    return out


def picks(algorithm: Algorithm, candidates: list[Server], n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    request = RequestInfo(client="10.0.0.101", path="/")
    return [algorithm.choose(candidates, request, rng).name for _ in range(n)]


# ---- exercise 02: the power of two choices ------------------------------------------------
def _p2c_unit(cls: type[Algorithm]) -> list[Result]:
    out = []
    chosen = picks(cls(), servers(5, 0), 1000)
    out.append(Result("with two servers, always the less busy one", 2, 2 * (set(chosen) == {"s2"}), "s2 (0 in flight) 1000 times of 1000",
                      f"s1 {chosen.count('s1')}, s2 {chosen.count('s2')}"))
    chosen = picks(cls(), servers(1, 0, 9), 1000)
    out.append(Result("never the busiest of three (it always loses its comparison)", 2, 2 * ("s3" not in chosen),
                      "s3 (9 in flight) 0 times", f"s3 {chosen.count('s3')} times"))
    chosen = picks(cls(), servers(0, 0, 0, 0), 4000)
    shares = {n: chosen.count(n) / 4000 for n in ("s1", "s2", "s3", "s4")}
    even = all(0.20 <= v <= 0.30 for v in shares.values())
    out.append(Result("spreads evenly when all are equally busy (random draws, not always the first)", 2, 2 * even,
                      "each 20-30 %", " ".join(f"{n} {v:.0%}" for n, v in shares.items())))
    one = servers(3)
    alone = picks(cls(), one, 10)
    out.append(Result("one candidate: that one", 1, 1 * (alone == ["s1"] * 10), "s1 10 times", f"{alone[:3]}..."))
    return out


def _p2c_network(run_dir: Path) -> list[Result]:
    from lab.analysis import report

    m = report.build(run_dir)
    total = sum(m.served_by.values()) or 1
    slow = m.served_by.get("o3", 0) / total
    return [Result("the slow origin o3 gets under half of round robin's third", 3, 3 * (slow < 1 / 6), "o3 < 16.7 % of the requests",
                   f"o3 {slow:.1%} ({m.served_by.get('o3', 0)} of {total})"),
            Result("nothing lost on the way", 2, 2 * (m.request_availability >= 0.99), "request availability >= 99 %",
                   f"{m.request_availability:.2%} ({m.total - m.ok} failed of {m.total})")]


@dataclass(frozen=True)
class Exercise:
    folder: str
    file: str  # the student's file, in starter/ (or --student DIR)
    cls: str
    scenario: str  # run with the student's class as the balancer's algorithm
    unit: Callable[[type[Algorithm]], list[Result]]
    network: Callable[[Path], list[Result]]
    unit_points: int
    network_points: int


EXERCISES = {
    "02-balancing-algorithms": Exercise("02-balancing-algorithms", "least_loaded_of_two.py", "PowerOfTwo", "my-algorithm.toml",
                                        _p2c_unit, _p2c_network, 7, 5),
}


def find(name: str) -> Exercise:
    matches = [e for key, e in EXERCISES.items() if key == name or key.startswith(name)]
    if len(matches) != 1:
        raise ValueError(f"no exercise {name!r} to grade; gradable: {', '.join(EXERCISES)}")
    return matches[0]


def grade(exercise: Exercise, student: Path | None, runs: Path, say: Any = print) -> list[Result]:
    """Every check of ``exercise`` against the student's file (default: the starter)."""
    folder = EXERCISES_DIR / exercise.folder
    path = (student or folder / "starter") / exercise.file
    reference = f"{path.resolve()}:{exercise.cls}"
    try:
        cls = check(reference)
    except PluginError as e:  # NotImplementedYet too: it says "not implemented yet", with the file and line of the TODO
        return _all_failed(exercise, str(e).replace(f"{EXERCISES_DIR.parent}/", ""))
    results = exercise.unit(cls)
    if os.geteuid() != 0:
        return results + [Result("on the network (needs root: sudo halab grade ...)", exercise.network_points, 0, "a run", "not run")]
    if sum(r.earned for r in results) < sum(r.points for r in results):
        return results + [Result("on the network (after the unit checks pass)", exercise.network_points, 0, "a run", "not run")]
    return results + exercise.network(_run(folder / exercise.scenario, reference, runs, say))


def _all_failed(exercise: Exercise, why: str) -> list[Result]:
    return [Result("the file loads and choose answers", exercise.unit_points, 0, "a class whose choose returns a candidate", why),
            Result("on the network", exercise.network_points, 0, "a run", "not run")]


def _run(scenario_path: Path, reference: str, runs: Path, say: Any) -> Path:
    import time

    import topologies
    from lab.core.scenario import parse_scenario
    from lab.runner import new_run_dir, run

    data = tomllib.loads(scenario_path.read_text(encoding="utf-8"))
    data.setdefault("balancer", {})["algorithm"] = reference
    data["name"] = f"grade-{data.get('name', scenario_path.stem)}"
    scenario = parse_scenario(data, str(scenario_path), topologies.lookup)
    run_dir = new_run_dir(scenario, runs)
    say(f"on the network: {scenario_path.name} with {reference.rsplit('/', 1)[-1]}, run directory {run_dir} ({time.strftime('%H:%M:%S')})")
    return run(scenario, run_dir, live=False, say=lambda *a: None)


def table(results: list[Result]) -> tuple[list[str], list[list[str]], str]:
    rows = [[("pass" if r.earned == r.points else "FAIL"), r.check, f"{r.earned}/{r.points}", r.expected, r.measured] for r in results]
    earned, points = sum(r.earned for r in results), sum(r.points for r in results)
    return ["", "check", "points", "expected", "measured"], rows, f"score: {earned}/{points}"
