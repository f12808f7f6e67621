"""``halab bench balancer``: our L7 balancer against HAProxy and nginx, same network, same run.

One single_lb network; the three origins are halab's. For each balancer in
turn (halab, HAProxy, nginx; one process/worker each, keep-alive to the
origins) wrk runs from c1 against lb1 for ``seconds`` with ``connections``
open connections; a direct wrk run against one origin gives the baseline for
"added latency". Numbers are printed side by side with the ratios the
targets are written in (requests/s vs HAProxy, p50 added latency vs HAProxy).
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

from lab.core.scenario import parse_scenario
from lab.net.lab import Lab, LabError
from lab.net.render import haproxy_config, nginx_config
from lab.net.roles import plan_services

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def parse_wrk(text: str) -> dict[str, float]:
    """Requests/s and the 50/99% latencies from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rps:
        raise LabError(f"wrk printed no Requests/sec:\n{text[-800:]}")
    out = {"rps": float(rps.group(1))}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s)\b", text)
        out[f"p{pct}"] = float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non2xx"] = float(errors.group(1)) if errors else 0.0
    return out


def run_bench(run_dir: Path, seconds: float = 5.0, connections: int = 32, say: Any = print) -> dict[str, dict[str, float]]:
    import topologies

    if shutil.which("wrk") is None:
        raise LabError("wrk is not installed (apt install wrk)")
    scenario = parse_scenario({"name": "bench-balancer", "duration": 60, "topology": {"name": "single_lb", "clients": 1, "origins": 3},
                               "balancer": {"log_requests": False, "health": {"inter": 2.0}}}, "halab bench", topologies.lookup)
    results: dict[str, dict[str, float]] = {}
    with Lab(scenario, run_dir, say=say) as lab:
        specs = plan_services(scenario, lab.addresses, run_dir)
        origins = [lab.start(s) for s in specs if s.service == "origin"]
        lab.wait_ready(origins)
        c1, lb1 = lab.net["c1"], lab.net["lb1"]
        servers = next(s for s in specs if s.service == "balancer").config["servers"]

        def wrk(url: str) -> dict[str, float]:
            c1.cmd(f"wrk -t1 -c{connections} -d1s {url} > /dev/null")  # warm up connections and caches
            return parse_wrk(c1.cmd(f"wrk -t1 -c{connections} -d{seconds:g}s --latency {url}"))

        results["direct to o1"] = wrk(f"http://{lab.addresses['o1']}/")
        conf = run_dir / "conf"
        conf.mkdir(exist_ok=True)
        for impl in ("halab", "haproxy", "nginx"):
            if impl == "halab":
                svc = lab.start(next(s for s in specs if s.service == "balancer"))
                lab.wait_ready([svc])
                stop = lambda: lab._stop(svc)  # noqa: E731
            else:
                if impl == "haproxy":
                    path = conf / "haproxy.cfg"
                    path.write_text(haproxy_config(scenario.balancer, servers, "lb1", str(conf / "haproxy.pid")))
                    cmd = ["haproxy", "-db", "-f", str(path)]
                else:
                    path = conf / "nginx.conf"
                    path.write_text(nginx_config(scenario.balancer, servers, "lb1", str(conf / "nginx.pid"), str(conf)))
                    cmd = ["nginx", "-c", str(path), "-g", "daemon off;"]
                with open(run_dir / f"{impl}.log", "wb") as log:
                    proc = lb1.popen(cmd, stdout=log, stderr=log)
                lab.ledger.add_process(proc.pid, f"lb1 {impl}")
                deadline = time.time() + 5
                while "200" not in c1.cmd(f"curl -s -o /dev/null -w '%{{http_code}}' -m 1 http://{lab.addresses['lb1']}/"):
                    if time.time() > deadline or proc.poll() is not None:
                        raise LabError(f"{impl} did not answer on lb1: see {run_dir / f'{impl}.log'}")
                    time.sleep(0.1)

                def stop(proc: Any = proc) -> None:
                    proc.terminate()
                    proc.wait(timeout=5)
            try:
                results[impl] = wrk(f"http://{lab.addresses['lb1']}/")
            finally:
                stop()
            say(f"{impl:<8} {results[impl]['rps']:9.0f} req/s  p50 {results[impl]['p50'] * 1000:6.2f} ms  p99 {results[impl]['p99'] * 1000:6.2f} ms")
    return results


def summary(results: dict[str, dict[str, float]]) -> list[str]:
    base = results["direct to o1"]["p50"]
    ha = results["haproxy"]
    lines = [f"{'balancer':<14}{'req/s':>10}{'p50':>10}{'p99':>10}{'added p50':>11}{'req/s vs HAProxy':>18}{'added p50 vs HAProxy':>22}"]
    for name, r in results.items():
        added = r["p50"] - base
        ha_added = ha["p50"] - base
        ratio_rps = r["rps"] / ha["rps"] if name != "direct to o1" else float("nan")
        ratio_lat = added / ha_added if name != "direct to o1" and ha_added > 0 else float("nan")
        lines.append(f"{name:<14}{r['rps']:>10.0f}{r['p50'] * 1000:>8.2f}ms{r['p99'] * 1000:>8.2f}ms{added * 1000:>9.2f}ms{ratio_rps:>18.2f}{ratio_lat:>22.2f}")
    return lines
