"""``halab hostile``: the hostile HTTP corpus against halab's gateway, HAProxy and nginx, same network, same run.

One single_lb network whose origins log every request they parse. On lb1,
halab's balancer (port 80), HAProxy (8081) and nginx (8082) run at once,
rendered from the same settings, with short client timeouts so that slow
shapes end quickly. From c1 the whole corpus (``lab.packets.hostile_corpus``)
is sent to each in turn. The result is a table of what each gateway
answered, and, for halab, a verdict: every request an origin parsed was one
the gateway routed (no smuggling), every shape had its answer or its close
within the timeouts, and every shape was refused or served as it should be.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from lab.bench import PORTS, _start_real
from lab.core.scenario import parse_scenario
from lab.events import read_events
from lab.net.lab import Lab, LabError
from lab.net.roles import plan_services
from lab.packets.hostile_corpus import judge, requests_in

TIMEOUT = 1.0  # head, body and keep-alive timeouts for every gateway in this run, seconds
WAIT = 3.0  # how long the sender waits for each shape's answer and close
IMPLS = ("halab", "haproxy", "nginx")


@dataclasses.dataclass
class HostileRun:
    results: dict[str, list[dict[str, Any]]]  # gateway -> one result per shape
    parsed: dict[str, Counter[str]]  # gateway -> corpus requests its origins parsed
    routed: Counter[str]  # corpus requests halab says it routed
    problems: list[str]  # what halab got wrong (empty: all well)


def run_hostile(run_dir: Path, impls: tuple[str, ...] = IMPLS, say: Any = print) -> HostileRun:
    import topologies

    limits = {"timeout_http_request": TIMEOUT, "timeout_client": TIMEOUT, "timeout_keep_alive": TIMEOUT}
    scenario = parse_scenario({"name": "hostile-http", "duration": 60,
                               "topology": {"name": "single_lb", "clients": 1, "origins": 2},
                               "balancer": {"health": {"inter": 2.0}, **limits}, "origins": {"log_requests": True}},
                              "halab hostile", topologies.lookup)
    results: dict[str, list[dict[str, Any]]] = {}
    with Lab(scenario, run_dir, say=say) as lab:
        specs = plan_services(scenario, lab.addresses, run_dir)
        lab.start_all(specs)
        servers = next(s for s in specs if s.service == "balancer").config["servers"]
        conf = run_dir / "conf"
        conf.mkdir(exist_ok=True)
        for impl in impls:
            if impl != "halab":
                _start_real(lab, impl, scenario, servers, conf, run_dir)
        for impl in impls:
            say(f"sending the corpus to {impl} on lb1:{PORTS[impl]}")
            out = lab.net["c1"].cmd(f"{sys.executable} -m lab.packets.hostile --host {lab.addresses['lb1']} --port {PORTS[impl]} "
                                    f"--prefix {impl} --wait {WAIT}")
            try:
                results[impl] = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            except ValueError:
                raise LabError(f"the corpus sender failed:\n{out[-1500:]}") from None
            if not results[impl]:
                raise LabError(f"the corpus sender printed nothing:\n{out[-1500:]}")
    events = read_events(run_dir)
    targets = [e["target"] for e in events if e["kind"] == "request_parsed"]
    parsed = {impl: requests_in(targets, impl) for impl in impls}
    routed = requests_in([e["path"] for e in events if e["kind"] == "request_routed" and e["node"] == "lb1"], "halab")
    problems = judge(results["halab"], parsed["halab"], routed, bound=TIMEOUT + 0.5) if "halab" in results else []
    return HostileRun(results, parsed, routed, problems)


def _cell(r: dict[str, Any], parsed: Counter[str], impl: str) -> str:
    statuses = "/".join(map(str, r["statuses"])) or "-"
    end = "open" if r["closed"] is None else f"{r['closed']:.1f}s"
    smuggled = " SMUGGLED" if parsed[f"/smuggled/{impl}/{r['name']}"] else ""
    return f"{statuses} {end}{smuggled}"


def table(run: HostileRun) -> list[str]:
    impls = list(run.results)
    by_name = {impl: {r["name"]: r for r in rows} for impl, rows in run.results.items()}
    names = [r["name"] for r in run.results[impls[0]]]
    lines = [f"each cell: answer statuses, then when the gateway closed (open: still open after {WAIT:g} s);"
             " SMUGGLED: an origin parsed the request hidden in the shape",
             f"{'shape':<30}{'careful':<9}" + "".join(f"{impl:<22}" for impl in impls)]
    for name in names:
        row = by_name[impls[0]][name]
        lines.append(f"{name:<30}{row['expect']:<9}" + "".join(f"{_cell(by_name[i][name], run.parsed[i], i):<22}" for i in impls))
    if "halab" in run.results:
        smuggled = sum(n for p, n in run.parsed["halab"].items() if p.startswith("/smuggled/")) - \
            sum(n for p, n in run.routed.items() if p.startswith("/smuggled/"))
        lines.append(f"halab: {len(names)} shapes, {sum(run.parsed['halab'].values())} requests parsed by the origins, "
                     f"{sum(run.routed.values())} routed, {max(0, smuggled)} hidden requests passed on")
        lines.append("halab verdict: " + ("all shapes handled carefully" if not run.problems else
                                          f"{len(run.problems)} problem(s):\n  " + "\n  ".join(run.problems)))
    return lines
