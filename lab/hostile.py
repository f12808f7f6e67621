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
import subprocess
import sys
import time
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
UPLOAD_MIB = 64  # the hostile upload: this much of a body declared as 10 GB
# What a hostile connection may add to halab's memory: a head (16 KiB), one socket read (256 KiB), the
# body held while connecting (256 KiB, lab.services.proxy.PENDING_LIMIT) and the two transports' write
# buffers (64 KiB each) come to about 1.5 MiB; the rest is the allocator's slack.
MEMORY_BOUND_MIB = 8.0
IMPLS = ("halab", "haproxy", "nginx")


@dataclasses.dataclass
class HostileRun:
    results: dict[str, list[dict[str, Any]]]  # gateway -> one result per shape
    parsed: dict[str, Counter[str]]  # gateway -> corpus requests its origins parsed
    routed: Counter[str]  # corpus requests halab says it routed
    problems: list[str]  # what halab got wrong (empty: all well)
    memory: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)  # gateway -> RSS before / peak, MiB


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB (from /proc: the process lives in a node's namespace, /proc is shared)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LabError(f"no VmRSS for pid {pid}")


def hostile_upload(lab: Lab, impl: str, pid: int, mib: int = UPLOAD_MIB) -> dict[str, float]:
    """RSS of a gateway before and at its peak while a client pushes ``mib`` MiB of a body declared as 10 GB."""
    before = rss_mib(pid)
    proc = lab.net["c1"].popen([sys.executable, "-m", "lab.packets.hostile", "--host", lab.addresses["lb1"], "--port", str(PORTS[impl]),
                                "--upload", str(mib)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = before
    deadline = time.time() + 60
    while proc.poll() is None and time.time() < deadline:
        peak = max(peak, rss_mib(pid))
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
    out = proc.communicate()[0].decode(errors="replace")
    time.sleep(0.2)
    peak = max(peak, rss_mib(pid))
    sent = json.loads(out.strip().splitlines()[-1]) if out.strip().startswith("{") else {"sent": 0, "seconds": 0}
    return {"before": round(before, 1), "peak": round(peak, 1), "sent_mib": round(sent["sent"] / 2**20, 1), "seconds": sent["seconds"]}


def run_hostile(run_dir: Path, impls: tuple[str, ...] = IMPLS, say: Any = print, upload_mib: int = UPLOAD_MIB) -> HostileRun:
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
        pids = {"halab": lab.services["lb1-balancer"].proc.pid}
        for impl in impls:
            if impl != "halab":
                pids[impl] = _start_real(lab, impl, scenario, servers, conf, run_dir).pid
        memory = {impl: hostile_upload(lab, impl, pids[impl], upload_mib) for impl in impls if upload_mib}
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
    if "halab" in memory and memory["halab"]["peak"] - memory["halab"]["before"] > MEMORY_BOUND_MIB:
        m = memory["halab"]
        problems.append(f"memory: {m['sent_mib']} MiB of hostile body raised halab's RSS from {m['before']} to {m['peak']} MiB "
                        f"(bound: +{MEMORY_BOUND_MIB} MiB)")
    if "halab" in memory and memory["halab"]["sent_mib"] < upload_mib * 0.9:
        problems.append(f"memory: the hostile upload sent only {memory['halab']['sent_mib']} of {upload_mib} MiB: not streamed?")
    return HostileRun(results, parsed, routed, problems, memory)


def _cell(r: dict[str, Any], parsed: Counter[str], impl: str) -> str:
    statuses = "/".join(map(str, r["statuses"])) or "-"
    end = "open" if r["closed"] is None else f"{r['closed']:.1f}s"
    smuggled = " +hidden" if parsed[f"/smuggled/{impl}/{r['name']}"] else ""
    return f"{statuses} {end}{smuggled}"


def table(run: HostileRun) -> list[str]:
    impls = list(run.results)
    by_name = {impl: {r["name"]: r for r in rows} for impl, rows in run.results.items()}
    names = [r["name"] for r in run.results[impls[0]]]
    lines = [f"each cell: answer statuses, then when the gateway closed (open: still open after {WAIT:g} s);",
             "+hidden: an origin parsed the request hidden in the shape (smuggling, unless the gateway routed it as a",
             "request of its own, as any gateway does with chunk_hidden_request; for halab the last lines count exactly)",
             f"{'shape':<30}{'careful':<9}" + "".join(f"{impl:<22}" for impl in impls)]
    for name in names:
        row = by_name[impls[0]][name]
        lines.append(f"{name:<30}{row['expect']:<9}" + "".join(f"{_cell(by_name[i][name], run.parsed[i], i):<22}" for i in impls))
    if "halab" in run.results:
        smuggled = sum(n for p, n in run.parsed["halab"].items() if p.startswith("/smuggled/")) - \
            sum(n for p, n in run.routed.items() if p.startswith("/smuggled/"))
        lines.append(f"halab: {len(names)} shapes, {sum(run.parsed['halab'].values())} requests parsed by the origins, "
                     f"{sum(run.routed.values())} routed, {max(0, smuggled)} hidden requests passed on")
        for impl, m in run.memory.items():
            lines.append(f"{impl}: a client sent {m['sent_mib']} MiB of a body declared as 10 GB in {m['seconds']} s; "
                         f"RSS {m['before']} MiB before, {m['peak']} MiB at the peak")
        lines.append("halab verdict: " + ("all shapes handled carefully" if not run.problems else
                                          f"{len(run.problems)} problem(s):\n  " + "\n  ".join(run.problems)))
    return lines
