"""Run a scenario: build, start services, drive load, apply faults on time, report.

The timeline is kept by this process: load starts at ``start_at`` (the same
absolute time for every client) and fault *i* is applied at
``start_at + at_i``. Between faults the loop refreshes the live view. When
the load generators have finished, the lab is torn down and the report is
computed from the event files alone.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from lab.core.scenario import Scenario, parse_scenario
from lab.core.schema import ConfigError
from lab.net.roles import plan_load, plan_services

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Seconds between starting the load generators and their first request: each must import Python and say it is
# ready before then (about 0.1 s each on 2 cores, so a fixed second was mostly waiting). run_started records what
# was left of it (ready_lead): a negative value would mean the clients started late.
LEAD_BASE, LEAD_PER_CLIENT = 0.3, 0.1


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; every problem is a ``ConfigError`` naming the file and key."""
    import topologies

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read the scenario: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), "", f"not valid TOML: {e}") from None
    default_name = path.parent.name if path.name == "scenario.toml" else path.stem
    return parse_scenario(data, str(path), topologies.lookup, default_name)


def new_run_dir(scenario: Scenario, base: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = base / f"{stamp}-{scenario.name}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = base / f"{stamp}-{scenario.name}-{n}"
    return run_dir.resolve()


def write_meta(scenario: Scenario, run_dir: Path) -> None:
    r = scenario.report
    meta = {
        "scenario": scenario.name,
        "source": scenario.source,
        "settings": {"bucket": r.bucket, "good_ratio": r.good_ratio, "merge_gap": r.merge_gap,
                     "worst_detection": scenario.balancer.health.worst_detection()},
        "expect": {k: v for k, v in vars(scenario.expect).items() if v is not None},
        "health": vars(scenario.balancer.health),
    }
    (run_dir / "run.json").write_text(json.dumps(meta, indent=1))
    if Path(scenario.source).exists():
        shutil.copy(scenario.source, run_dir / "scenario.toml")


def run(scenario: Scenario, run_dir: Path, live: bool = True, say: Any = print) -> Path:
    """Run ``scenario`` end to end; return the run directory (the report is built by the caller)."""
    from lab.net import features
    from lab.net.lab import Lab

    scenario = features.resolve(scenario, say)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_meta(scenario, run_dir)
    lab = Lab(scenario, run_dir, say=say)
    try:
        _drive(lab, scenario, run_dir, live)
    finally:  # also when the run stopped on an error: what the cleanup had to remove is worth knowing
        if lab.leftover_report:
            say(f"cleanup removed: {', '.join(lab.leftover_report)}")
    return run_dir


def _drive(lab: Any, scenario: Scenario, run_dir: Path, live: bool) -> None:
    from lab.live import LiveView
    from lab.net import guards
    from lab.net.faults import Faults

    with lab:
        lab.capture(scenario.capture)
        guards.guard_vrrp(lab)
        lab.start_all(plan_services(scenario, lab.addresses, run_dir))
        faults = Faults(lab)
        lead = LEAD_BASE + LEAD_PER_CLIENT * len(scenario.load.clients)
        start_at = time.time() + lead
        clients = [lab.start(spec) for spec in plan_load(scenario, lab.addresses, run_dir, start_at)]
        lab.wait_ready(clients)
        ready_lead = start_at - time.time()
        if ready_lead < 0:
            lab.say(f"the load generators were ready {-ready_lead:.2f} s after the load was due to start: its first requests "
                    "went out late")
        lab.event("run_started", scenario=scenario.name, start_at=start_at, duration=scenario.duration, ready_lead=round(ready_lead, 3))
        pending = list(scenario.faults)
        end = start_at + scenario.duration + scenario.load.timeout + 1
        view = LiveView(run_dir, scenario.name, scenario.duration) if live else None
        with view if view else contextlib.nullcontext():
            while time.time() < end:
                while pending and time.time() >= start_at + pending[0].at:
                    fault = pending.pop(0)
                    faults.apply(fault.action, fault.target, fault.note)
                lab.watch()  # a service that died by itself is an event now, not a mystery later
                if view:
                    view.update(faults.broken())
                if all(s.proc is not None and s.proc.poll() is not None for s in clients):
                    break
                next_due = start_at + pending[0].at if pending else end
                time.sleep(max(0.0, min(0.1, next_due - time.time())))
            still = lab.wait_exit(clients, timeout=max(0.0, end - time.time()))
            if still:
                lab.say(f"load generators still running past their deadline: {', '.join(s.spec.key for s in still)}")
        guards.report_vrrp(lab)
        lab.event("run_finished", scenario=scenario.name, broken_at_end=faults.broken())
