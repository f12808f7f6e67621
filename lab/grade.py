"""``halab grade EXERCISE [--student DIR]``: a student's own code, checked alone and then on the network.

An implement-it exercise has a starter file with TODOs (``starter/``), a
solution (``solution/``) and the checks below: exercise 1 a health
counter's rule, exercise 2 a balancing algorithm, exercise 3 a VRRP
backup's timer (each a seam of ``lab.core.plugins``). Grading runs in two
parts, as a student's code is judged in the p4 tutorials:

1. **unit checks**: the student's class called directly, with made-up
   input (and a seeded random generator), each check with what was expected
   and what came out, often against halab's own reference class (no root,
   a second);
2. **on the network**: the exercise's scenario with the student's class in
   the service it fills (root), judged on what the network did: the
   report's shares, detections, failovers and availability.

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

from lab.core import plugins
from lab.core.algorithms.base import Algorithm, RequestInfo, Server
from lab.core.health import DOWN, FAIL, PASS, UP, HaproxyRule, HealthRule, HealthSettings
from lab.core.plugins import PluginError, check, sample_servers
from lab.core.vrrp import BackupTimer, RfcTimer

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


# ---- exercise 01: the health counter -------------------------------------------------------
def _states(rule: HealthRule, results: str, settings: HealthSettings, up: bool = True) -> list[str]:
    """The state after each result of ``results`` ('p'/'f'), from fully UP (or fully DOWN)."""
    state, health = (UP, settings.top) if up else (DOWN, 0)
    out = []
    for r in results:
        state, health = rule.step(state, health, PASS if r == "p" else FAIL, settings)
        out.append(state)
    return out


def _counter_unit(cls: type[HealthRule]) -> list[Result]:
    rule, out = cls(), []
    s23, s32 = HealthSettings(rise=2, fall=3), HealthSettings(rise=3, fall=2)
    got = [_states(rule, "fff", s23), _states(rule, "ff", s32)]
    out.append(Result("an UP server goes DOWN after exactly fall failures in a row", 2,
                      2 * (got == [[UP, UP, DOWN], [UP, DOWN]]), "fall 3: UP UP DOWN; fall 2: UP DOWN", " ; ".join(" ".join(g) for g in got)))
    got = [_states(rule, "pp", s23, up=False), _states(rule, "ppp", s32, up=False)]
    out.append(Result("a DOWN server comes back after exactly rise passes in a row", 2,
                      2 * (got == [[DOWN, UP], [DOWN, DOWN, UP]]), "rise 2: DOWN UP; rise 3: DOWN DOWN UP", " ; ".join(" ".join(g) for g in got)))
    got = [_states(rule, "ffpff", s23)]
    out.append(Result("one pass heals an UP server that had a bad moment", 1, 1 * (got[0][-1] == UP),
                      "fail fail pass fail fail: still UP", " ".join(got[0])))
    got = [_states(rule, "pfp", s32, up=False)]
    out.append(Result("one failure resets a recovering server", 1, 1 * (got[0][-1] == DOWN),
                      "rise 3, pass fail pass: still DOWN", " ".join(got[0])))
    reference, differ = HaproxyRule(), []
    for rise, fall in ((1, 1), (2, 3), (3, 2), (5, 5)):
        settings = HealthSettings(rise=rise, fall=fall)
        for state in (UP, DOWN):
            for health in range(settings.top + 1):
                for result in (PASS, FAIL):
                    mine, ref = rule.step(state, health, result, settings), reference.step(state, health, result, settings)
                    if tuple(mine) != tuple(ref):
                        differ.append(f"rise {rise} fall {fall}, {state} {health} on {result}: {mine} (HAProxy {ref})")
    out.append(Result("the same as HAProxy's rule for every state, counter and result", 2, 2 * (not differ),
                      "no difference", f"{len(differ)} differences, e.g. {differ[0]}" if differ else "no difference"))
    return out


def _expect_network(points: dict[str, int]) -> Callable[[Path], list[Result]]:
    """The scenario's own ``[expect]`` checks, judged on the run, each worth its points."""
    def judge(run_dir: Path) -> list[Result]:
        from lab.analysis import report

        return [Result(f"on the network: {c.name}", points.get(c.name, 1), points.get(c.name, 1) * c.passed, "passes", c.detail)
                for c in report.build(run_dir).checks]
    return judge


# ---- exercise 03: the VRRP backup timer -----------------------------------------------------
def _timer_unit(cls: type[BackupTimer]) -> list[Result]:
    timer, ref, out, now = cls(), RfcTimer(), [], 50.0  # RFC 5798's timer, halab's own, is the reference
    for mine, interval in ((100, 1.0), (200, 0.1)):
        got = timer.after_advert(now, mine + 10, mine, True, interval)
        want = ref.after_advert(now, mine + 10, mine, True, interval)
        out.append(Result(f"an advert from a higher priority: Master_Down_Interval (priority {mine}, interval {interval:g} s)", 2 if mine == 100 else 1,
                          (2 if mine == 100 else 1) * (got is not None and abs(got - want) < 1e-6),
                          f"now + {want - now:.4f} s", "None" if got is None else f"now + {got - now:.4f} s"))
    got = timer.after_advert(now, 0, 100, True, 1.0)
    want = ref.after_advert(now, 0, 100, True, 1.0)
    out.append(Result("priority 0 (the master stops): only Skew_Time", 2, 2 * (got is not None and abs(got - want) < 1e-6),
                      f"now + {want - now:.4f} s", "None" if got is None else f"now + {got - now:.4f} s"))
    got = timer.after_advert(now, 50, 100, True, 1.0)
    out.append(Result("a lower-priority master while we preempt: the timer keeps running", 2, 2 * (got is None), "None", repr(got)))
    got = timer.after_advert(now, 50, 100, False, 1.0)
    want = ref.after_advert(now, 50, 100, False, 1.0)
    out.append(Result("a lower-priority master without preempt: accepted, Master_Down_Interval", 1,
                      1 * (got is not None and abs(got - want) < 1e-6), f"now + {want - now:.4f} s", "None" if got is None else f"now + {got - now:.4f} s"))
    first = [timer.after_advert(now, 150, p, True, 0.1) for p in (125, 100)]
    out.append(Result("the higher-priority backup times out first (Skew_Time)", 1,
                      1 * (None not in first and first[0] < first[1]), "priority 125 before priority 100",
                      " vs ".join("None" if t is None else f"{t - now:.4f} s" for t in first)))
    return out


def _timer_network(run_dir: Path) -> list[Result]:
    from lab.analysis import report

    m = report.build(run_dir)
    cut = next((f for f in m.failovers if f.fault == "poweroff gw1"), None)
    who = cut.new_master if cut else None
    out = [Result("gw2, the highest-priority backup, takes over from gw1", 2, 2 * (who == "gw2"), "gw2", str(who))]
    took, mdi = (cut.took, cut.master_down_interval) if cut else (None, None)
    # gw1's last advert left up to one interval before the cut: the takeover lands between MDI - interval and MDI (+ scheduling)
    fits = took is not None and mdi is not None and mdi - 0.1 - 0.02 <= took <= mdi + 0.05
    out.append(Result("it waited Master_Down_Interval after gw1's last advert", 2, 2 * fits,
                      f"{mdi - 0.1:.3f}-{mdi:.3f} s after the cut" if mdi else "a takeover", "no takeover" if took is None else f"{took:.3f} s"))
    last = _masters_at(run_dir, m.load_end)
    out.append(Result("gw1 takes the VIP back when it returns (preempt)", 2, 2 * (last == {"gw1"}), "gw1 alone is MASTER at the end",
                      ", ".join(sorted(last)) if last else "no MASTER"))
    return out + _expect_network({"one_master_per_vip": 1, "max_outage": 1})(run_dir)


def _masters_at(run_dir: Path, when: float) -> set[str] | None:
    """Who was MASTER at ``when`` (the end of the load: later, the lab's own shutdown empties the set)."""
    from lab.analysis.vrrp_analysis import masters_over_time
    from lab.events import read_events

    last = None
    for t, _, owners in masters_over_time(read_events(run_dir)):
        if t <= when:
            last = owners
    return last


@dataclass(frozen=True)
class Exercise:
    folder: str
    file: str  # the student's file, in starter/ (or --student DIR)
    cls: str
    interface: plugins.Interface  # the seam the class fills
    scenario: str  # run with the student's class in that seam
    unit: Callable[[Any], list[Result]]
    network: Callable[[Path], list[Result]]
    unit_points: int
    network_points: int


EXERCISES = {
    "01-health-checks-and-failover": Exercise("01-health-checks-and-failover", "rise_fall.py", "RiseFall", plugins.HEALTH_RULE,
                                              "my-counter.toml", _counter_unit,
                                              _expect_network({"max_detection": 2, "no_requests_after_detection": 1,
                                                               "reconverge_within": 2, "availability_min": 1}), 8, 6),
    "02-balancing-algorithms": Exercise("02-balancing-algorithms", "least_loaded_of_two.py", "PowerOfTwo", plugins.ALGORITHM,
                                        "my-algorithm.toml", _p2c_unit, _p2c_network, 7, 5),
    "03-vrrp-redundancy": Exercise("03-vrrp-redundancy", "backup_timer.py", "MyTimer", plugins.BACKUP_TIMER, "my-timer.toml",
                                   _timer_unit, _timer_network, 9, 8),
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
        cls = check(reference, exercise.interface)
    except PluginError as e:  # NotImplementedYet too: it says "not implemented yet", with the file and line of the TODO
        return _all_failed(exercise, str(e).replace(f"{EXERCISES_DIR.parent}/", ""))
    results = exercise.unit(cls)
    if os.geteuid() != 0:
        return results + [Result("on the network (needs root: sudo halab grade ...)", exercise.network_points, 0, "a run", "not run")]
    if sum(r.earned for r in results) < sum(r.points for r in results):
        return results + [Result("on the network (after the unit checks pass)", exercise.network_points, 0, "a run", "not run")]
    return results + exercise.network(_run(folder / exercise.scenario, exercise.interface, reference, runs, say))


def _all_failed(exercise: Exercise, why: str) -> list[Result]:
    method = exercise.interface.method
    return [Result(f"the file loads and {method} answers", exercise.unit_points, 0, f"a class whose {method} answers in range", why),
            Result("on the network", exercise.network_points, 0, "a run", "not run")]


def _run(scenario_path: Path, interface: plugins.Interface, reference: str, runs: Path, say: Any) -> Path:
    import time

    import topologies
    from lab.core.scenario import parse_scenario
    from lab.runner import new_run_dir, run

    data = tomllib.loads(scenario_path.read_text(encoding="utf-8"))
    *tables, key = interface.setting.split(".")  # "balancer.health.rule": data["balancer"]["health"]["rule"]
    table = data
    for name in tables:
        table = table.setdefault(name, {})
    table[key] = reference
    data["name"] = f"grade-{data.get('name', scenario_path.stem)}"
    scenario = parse_scenario(data, str(scenario_path), topologies.lookup)
    run_dir = new_run_dir(scenario, runs)
    say(f"on the network: {scenario_path.name} with {reference.rsplit('/', 1)[-1]}, run directory {run_dir} ({time.strftime('%H:%M:%S')})")
    return run(scenario, run_dir, live=False, say=lambda *a: None)


def table(results: list[Result]) -> tuple[list[str], list[list[str]], str]:
    rows = [[("pass" if r.earned == r.points else "FAIL"), r.check, f"{r.earned}/{r.points}", r.expected, r.measured] for r in results]
    earned, points = sum(r.earned for r in results), sum(r.points for r in results)
    return ["", "check", "points", "expected", "measured"], rows, f"score: {earned}/{points}"
