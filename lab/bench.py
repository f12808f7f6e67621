"""``halab bench balancer``: our L7 balancer against HAProxy and nginx, same network, same run.

One single_lb network; the three origins are halab's. For each balancer in
turn (halab, HAProxy, nginx; one process/worker each, keep-alive to the
origins) wrk runs from c1 against lb1 for ``seconds`` with ``connections``
open connections (throughput), then with one connection (latency). "Added
latency" is a balancer's one-connection p50 minus that of wrk straight to an
origin: under saturation p50 is only connections / throughput, which says
nothing new. Numbers are printed side by side with the ratios the targets
are written in (requests/s vs HAProxy, added p50 vs HAProxy).
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
            result = parse_wrk(c1.cmd(f"wrk -t1 -c{connections} -d{seconds:g}s --latency {url}"))
            # Under saturation p50 is just connections / throughput; the delay a balancer adds to
            # one request shows with a single connection, one request at a time.
            light = parse_wrk(c1.cmd(f"wrk -t1 -c1 -d{max(2, round(seconds / 2))}s --latency {url}"))
            result["p50_1conn"] = light["p50"]
            return result

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
    base = results["direct to o1"]["p50_1conn"]
    ha = results["haproxy"]
    ha_added = ha["p50_1conn"] - base
    lines = ["saturated: wrk -c32 (req/s, p50, p99); added p50: one connection, minus the direct-to-origin p50",
             f"{'balancer':<14}{'req/s':>10}{'p50':>10}{'p99':>10}{'added p50':>11}{'req/s vs HAProxy':>18}{'added p50 vs HAProxy':>22}"]
    for name, r in results.items():
        added = r["p50_1conn"] - base
        ratio_rps = r["rps"] / ha["rps"] if name != "direct to o1" else float("nan")
        ratio_lat = added / ha_added if name != "direct to o1" and ha_added > 0 else float("nan")
        lines.append(f"{name:<14}{r['rps']:>10.0f}{r['p50'] * 1000:>8.2f}ms{r['p99'] * 1000:>8.2f}ms{added * 1000:>9.3f}ms{ratio_rps:>18.2f}{ratio_lat:>22.2f}")
    return lines


def client_outage(requests: list[dict[str, Any]], fault_at: float) -> float:
    """Seconds from the first failed request after ``fault_at`` to the next one that succeeded (by due time)."""
    after = sorted((r for r in requests if r["t"] >= fault_at - 1.0), key=lambda r: r["t"])
    first_fail = next((r["t"] for r in after if not r["ok"]), None)
    if first_fail is None:
        return 0.0
    recovered = next((r["t"] for r in after if r["ok"] and r["t"] > first_fail), None)
    return (recovered if recovered is not None else after[-1]["t"]) - first_fail


def run_failover_bench(run_dir: Path, trials: int = 5, interval: float = 0.1, rate: float = 200.0,
                       say: Any = print) -> dict[str, list[dict[str, float]]]:
    """Power off the VRRP master under load, ``trials`` times per speaker; outage as the clients saw it."""
    import dataclasses

    from lab.events import read_events
    from lab.net.faults import Faults
    from lab.net.roles import plan_load
    from lab.runner import load_scenario

    base = load_scenario("exercises/03-vrrp-redundancy/scenario.toml")
    per_trial = 4.0
    results: dict[str, list[dict[str, float]]] = {}
    for impl in ("halab", "keepalived"):
        scenario = dataclasses.replace(
            base, name=f"bench-failover-{impl}", duration=trials * per_trial + 1, faults=(),
            vrrp=dataclasses.replace(base.vrrp, impl=impl, advert_interval=interval, track=False),
            load=dataclasses.replace(base.load, rate=rate / len(base.load.clients), timeout=1.0))
        sub = run_dir / impl
        with Lab(scenario, sub, say=say) as lab:
            lab.start_all(plan_services(scenario, lab.addresses, sub))
            faults = Faults(lab)
            time.sleep(1.0)
            start = time.time() + 0.5
            lab.start_all(plan_load(scenario, lab.addresses, sub, start))
            cuts = []
            for trial in range(trials):
                time.sleep(max(0.0, start + 1.0 + trial * per_trial - time.time()))
                cuts.append(time.time())
                faults.apply("poweroff", "gw1")
                time.sleep(1.5)
                faults.apply("poweron", "gw1")  # preempt: gw1 takes the VIP back before the next trial
            lab.wait_exit([s for s in lab.services.values() if s.spec.service == "loadgen"], timeout=per_trial * trials + 5)
            events = read_events(sub)
        requests = [e for e in events if e["kind"] == "request_finished"]
        masters = [e for e in events if e["kind"] == "vrrp_state_changed" and e["node"] == "gw2" and e["after"] == "MASTER"]
        results[impl] = []
        for cut in cuts:
            takeover = next((e["t"] - cut for e in masters if e["t"] >= cut), float("nan"))
            failed = sum(1 for r in requests if cut - 1 <= r["t"] <= cut + 1.5 and not r["ok"])
            results[impl].append({"outage": client_outage([r for r in requests if r["t"] <= cut + 1.5], cut),
                                  "takeover": takeover, "failed": failed})
        say(f"{impl:<11} outages: " + ", ".join(f"{r['outage']:.3f}" for r in results[impl]))
    return results


def failover_summary(results: dict[str, list[dict[str, float]]], interval: float) -> list[str]:
    import statistics

    from lab.core.vrrp import master_down_interval

    mdi = master_down_interval(100, interval)
    lines = [f"advert interval {interval:g} s; gw2 (priority 100) Master_Down_Interval {mdi:.3f} s",
             f"{'speaker':<12}{'median outage':>15}{'worst outage':>14}{'median takeover':>17}{'failed requests':>17}"]
    med = {}
    for impl, rows in results.items():
        outages = [r["outage"] for r in rows]
        med[impl] = statistics.median(outages)
        lines.append(f"{impl:<12}{med[impl]:>13.3f} s{max(outages):>12.3f} s{statistics.median(r['takeover'] for r in rows):>15.3f} s"
                     f"{sum(r['failed'] for r in rows) / len(rows):>17.1f}")
    if med.get("keepalived"):
        lines.append(f"halab / keepalived median outage: {med['halab'] / med['keepalived']:.2f}")
    return lines
