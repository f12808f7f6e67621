"""``halab chaos``: seeded random fault timelines on a real network, each run held to the lab's invariants.

For each seed, a fault timeline is drawn from the topology's own parts
(``lab.core.chaos``), put in place of the scenario's own faults, and run.
The run must then satisfy every invariant of a lab that heals:

- after every repair the lab reconverges within the bound: one MASTER per
  VIP, every origin UP at every balancer, no failed request (the report's
  "Recovery after each repair");
- no split brain outlives a repair; no service dies by itself;
- every request is recorded exactly once (as many records as the load
  generators said they would send, no id twice);
- the report written at the end equals a rebuild from the events alone.

A failure names the seed, the invariant, the repair it followed and the
events around it, and leaves ``chaos-seed-N.toml`` in the run directory:
the scenario that replays it with ``halab run``.
"""
from __future__ import annotations

import dataclasses
import json
import re
import statistics
from pathlib import Path
from typing import Any

from lab.analysis import report
from lab.analysis.metrics import Metrics
from lab.core.chaos import ChaosSettings, as_toml, draw
from lab.core.scenario import Scenario
from lab.core.timeline import parse_faults
from lab.core.vrrp import master_down_interval
from lab.events import read_events


@dataclasses.dataclass
class ChaosRun:
    seed: int
    impl: str
    run_dir: Path
    entries: list[dict[str, Any]]
    metrics: Metrics | None
    violations: list[str]

    @property
    def reconverged(self) -> float | None:
        """The slowest recovery of the run (None: one never came)."""
        judged = [r for r in self.metrics.recoveries if not r.cut_short] if self.metrics is not None else []
        if not judged:
            return None
        times = [r.took for r in judged]
        return None if any(t is None for t in times) else max(t for t in times if t is not None)


def settings_of(scenario: Scenario, faults: int | None = None) -> ChaosSettings:
    c = scenario.chaos
    return ChaosSettings(faults if faults is not None else c.faults, c.kinds, c.min_hold, c.max_hold, c.settle)


def recovery_bound(scenario: Scenario) -> float:
    """How long a healthy lab may take to reconverge after a repair, from its own settings.

    The slowest of: a balancer seeing a returning origin UP (the next probe
    within ``inter``, then ``rise`` passing probes), and VRRP settling (a
    returning gateway's readiness checks, then Master_Down_Interval and an
    advert); plus the client timeout (requests in flight at the repair may
    still fail) and a second for process start-up on a busy VM.
    """
    if scenario.chaos.reconverge_within is not None:
        return scenario.chaos.reconverge_within
    h = scenario.balancer.health
    fast = h.fastinter if h.fastinter is not None else h.inter
    health = h.inter + h.rise * h.check_timeout + (h.rise - 1) * fast
    vrrp = 0.0
    if scenario.layout.vrrp:
        v = scenario.vrrp
        lowest = min(g["priority"] for groups in scenario.layout.vrrp.values() for g in groups)
        vrrp = v.track_rise * v.track_interval + master_down_interval(lowest, v.advert_interval) + v.advert_interval + v.preempt_delay
    return max(health, vrrp) + scenario.load.timeout + 1.0


def with_timeline(scenario: Scenario, seed: int, settings: ChaosSettings, impl: str | None = None) -> tuple[Scenario, list[dict[str, Any]]]:
    entries = draw(scenario.layout, scenario.duration, seed, settings)
    faults = parse_faults(entries, scenario.duration, scenario.layout, f"chaos seed {seed}")
    changed = dataclasses.replace(scenario, name=f"{scenario.name}-chaos-{seed}" + (f"-{impl}" if impl else ""), faults=faults)
    if impl is not None and scenario.layout.vrrp:
        changed = dataclasses.replace(changed, vrrp=dataclasses.replace(scenario.vrrp, impl=impl, impls={}))
    return changed, entries


def replay_text(scenario: Scenario, entries: list[dict[str, Any]], seed: int) -> str:
    """The scenario file with its own faults replaced by the drawn ones: ``halab run`` it to replay."""
    text = Path(scenario.source).read_text(encoding="utf-8") if Path(scenario.source).exists() else ""
    kept, skipping = [], False
    for line in text.splitlines():
        header = line.strip().startswith("[")
        if line.strip() == "[[faults]]":
            skipping = True
            continue
        if skipping and header:
            skipping = False
        if not skipping:
            kept.append(line)
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).rstrip()
    return f"# chaos timeline drawn with seed {seed} (halab chaos {scenario.source} --seed {seed})\n{body}\n\n{as_toml(entries)}"


def invariants(scenario: Scenario, run_dir: Path, metrics: Metrics, bound: float) -> list[str]:
    out = []
    events = read_events(run_dir)
    for r in metrics.recoveries:
        clock = f"{r.at - metrics.load_start:.2f} s"
        if r.cut_short:
            continue  # the next fault came before the lab could settle: nothing to judge here
        if r.took is None or r.took > bound:
            parts = ", ".join(f"{name} {'never' if v is None else f'{v:.2f} s'}" for name, v in
                              (("one MASTER per VIP", r.vip), ("every origin UP", r.health), ("last failure", r.success))
                              if name != "one MASTER per VIP" or r.has_vrrp)
            out.append(f"reconverge: after '{r.repair}' at {clock}: {parts} (bound {bound:.2f} s)" + around(events, r.at, metrics))
    if any(r.has_vrrp and r.vip is None and not r.cut_short for r in metrics.recoveries):
        out.append("one MASTER per VIP: not reached after a repair")
    for f in metrics.service_failures:
        out.append(f"service failed: {f['node']} {f['service']} {f['task']}: {f['error']}")
    promised = sum(e.get("requests", 0) for e in events if e["kind"] == "load_started")
    if metrics.duplicate_ids:
        out.append(f"requests recorded twice: {', '.join(metrics.duplicate_ids[:5])}")
    if promised and metrics.total != promised:
        out.append(f"requests recorded {metrics.total} times for {promised} sent: every request must be recorded exactly once")
    written = json.loads((run_dir / "report.json").read_text())
    rebuilt = json.loads(json.dumps(report.to_dict(report.build(run_dir)), default=str))
    if written != rebuilt:
        out.append("the report written at the end differs from a rebuild from the events")
    return out


def around(events: list[dict[str, Any]], t: float, metrics: Metrics, span: float = 1.0) -> str:
    """The events near ``t`` that tell a story (routing and probes left out), for a failure message."""
    keep = [e for e in events if abs(e["t"] - t) <= span and e["kind"] not in
            ("request_routed", "request_finished", "health_checked", "vrrp_heartbeat", "balancer_load")]
    lines = [f"    {e['t'] - metrics.load_start:7.2f} {e['node']:<5} {e['kind']:<20} " +
             ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("t", "node", "kind", "service"))[:100] for e in keep[:25]]
    return ("\n" + "\n".join(lines)) if lines else ""


def run_chaos(scenario: Scenario, seeds: list[int], base_dir: Path, faults: int | None = None, impl: str | None = None,
              say: Any = print) -> list[ChaosRun]:
    from lab.runner import run

    settings = settings_of(scenario, faults)
    bound = recovery_bound(scenario)
    out = []
    for seed in seeds:
        chaotic, entries = with_timeline(scenario, seed, settings, impl)
        run_dir = base_dir / (f"seed-{seed}" + (f"-{impl}" if impl else ""))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / f"chaos-seed-{seed}.toml").write_text(replay_text(scenario, entries, seed))
        say(f"seed {seed}{' (' + impl + ')' if impl else ''}: " + "; ".join(f"{e['at']:g} {e['action']} {e['target']}" for e in entries))
        run(chaotic, run_dir, live=False, say=lambda *a: None)
        metrics = report.build(run_dir)
        report.write(metrics, run_dir, plot=False)
        violations = invariants(chaotic, run_dir, metrics, bound)
        result = ChaosRun(seed, impl or "as written", run_dir, entries, metrics, violations)
        took = result.reconverged
        say(f"  {'PASS' if not violations else 'FAIL'}  reconverged within {'—' if took is None else f'{took:.2f} s'} "
            f"(bound {bound:.2f} s), availability {metrics.request_availability:.2%}")
        for v in violations:
            say(f"  seed {seed}: {v}")
        out.append(result)
    return out


def summary(runs: list[ChaosRun]) -> list[str]:
    lines = []
    by_impl: dict[str, list[ChaosRun]] = {}
    for r in runs:
        by_impl.setdefault(r.impl, []).append(r)
    for impl, rs in by_impl.items():
        times = [r.reconverged for r in rs if r.reconverged is not None]
        passed = sum(1 for r in rs if not r.violations)
        med = f"{statistics.median(times):.2f} s" if times else "—"
        lines.append(f"{impl}: {passed}/{len(rs)} seeds passed every invariant; median reconvergence {med}, worst "
                     f"{max(times):.2f} s" if times else f"{impl}: {passed}/{len(rs)} seeds passed every invariant")
        failed = [r for r in rs if r.violations]
        if failed:
            lines.append("  replay a failure with: sudo halab run " + str(failed[0].run_dir / f"chaos-seed-{failed[0].seed}.toml"))
    if len(by_impl) == 2 and all(any(r.reconverged is not None for r in rs) for rs in by_impl.values()):
        (a, ra), (b, rb) = by_impl.items()
        ma = statistics.median(r.reconverged for r in ra if r.reconverged is not None)
        mb = statistics.median(r.reconverged for r in rb if r.reconverged is not None)
        lines.append(f"median reconvergence {a} {ma:.2f} s vs {b} {mb:.2f} s: {a} is {'as fast or faster' if ma <= mb else 'slower'}")
    return lines
