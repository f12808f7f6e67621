"""``halab bench balancer``: our L7 balancer against HAProxy and nginx, same network, same run.

One single_lb network; the three origins are halab's. halab's balancer
(port 80), HAProxy (8081) and nginx (8082) all run on lb1 at once, one
process/worker each, keep-alive to the origins. wrk on c1 then measures
each of them, and wrk straight to an origin, in turn; the turn is repeated
for several rounds, in a rotated order, so that whatever else the VM does
meanwhile falls on every balancer alike. Each measurement is:

- throughput: ``connections`` open connections for ``seconds`` (req/s, p50, p99);
- added latency: one connection, one request at a time, p50 minus the p50 of
  wrk straight to an origin in the same round (three 1 s runs per target,
  taken in turn; their median). Under saturation p50 is only
  connections / throughput, which says nothing new.

The ratios the targets are written in (req/s vs HAProxy, added p50 vs
HAProxy) are taken within each round, then summarised as median and range.
"""
from __future__ import annotations

import dataclasses
import math
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from lab.core.scenario import parse_scenario
from lab.core.vrrp import master_down_interval
from lab.net.lab import Lab, LabError
from lab.net.render import haproxy_config, nginx_config
from lab.net.roles import plan_services
from topologies.active_standby import VIP as ACTIVE_STANDBY_VIP

UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
DIRECT = "direct to o1"
PORTS = {"halab": 80, "haproxy": 8081, "nginx": 8082}
TARGET_RPS_RATIO = 0.5  # halab's balancer: at least half of HAProxy's requests/s ...
TARGET_ADDED_RATIO = 2.0  # ... and at most twice the latency HAProxy adds to one request


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


Rounds = list[dict[str, dict[str, float]]]  # one dict per round: target -> wrk numbers


def spread(values: list[float], fmt: str) -> str:
    """A cell of a bench table: the median over the rounds and, in brackets, the range."""
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def rotated(names: list[str], round_index: int) -> list[str]:
    """This round's order of the targets: each round starts one further, so no target always goes first (or last)."""
    k = round_index % len(names)
    return names[k:] + names[:k]


def one_connection_p50(host: Any, targets: dict[str, str], order: list[str], repeats: int = 3) -> dict[str, float]:
    """The p50 of one connection, one request at a time, for each target: short wrk runs taken in turn,
    ``repeats`` times over, so that a moment of noise on the VM lands on every target alike; their median."""
    light: dict[str, list[float]] = {name: [] for name in order}
    for _ in range(repeats):
        for name in order:
            light[name].append(parse_wrk(host.cmd(f"wrk -t1 -c1 -d1s --latency {targets[name]}"))["p50"])
    return {name: statistics.median(values) for name, values in light.items()}


def _start_real(lab: Lab, impl: str, scenario: Any, servers: list[dict[str, Any]], conf: Path, run_dir: Path) -> Any:
    """HAProxy or nginx on lb1, on its own port, from the same balancer settings."""
    settings = dataclasses.replace(scenario.balancer, port=PORTS[impl])
    if impl == "haproxy":
        path = conf / "haproxy.cfg"
        path.write_text(haproxy_config(settings, servers, "lb1", str(conf / "haproxy.pid")))
        cmd = ["haproxy", "-db", "-f", str(path)]
    else:
        path = conf / "nginx.conf"
        path.write_text(nginx_config(settings, servers, "lb1", str(conf / "nginx.pid"), str(conf)))
        cmd = ["nginx", "-c", str(path), "-g", "daemon off;"]
    with open(run_dir / f"{impl}.log", "wb") as log:
        proc = lab.net["lb1"].popen(cmd, stdout=log, stderr=log)
    lab.ledger.add_process(proc.pid, f"lb1 {impl}")  # the lab's cleanup stops it, also after a crash
    url = f"http://{lab.addresses['lb1']}:{PORTS[impl]}/"
    deadline = time.time() + 5
    while "200" not in lab.net["c1"].cmd(f"curl -s -o /dev/null -w '%{{http_code}}' -m 1 {url}"):
        if time.time() > deadline or proc.poll() is not None:
            raise LabError(f"{impl} did not answer on {url}: see {run_dir / f'{impl}.log'}")
        time.sleep(0.1)
    return proc


def run_bench(run_dir: Path, seconds: float = 3.0, connections: int = 32, rounds: int = 3, say: Any = print) -> Rounds:
    import topologies

    if shutil.which("wrk") is None:
        raise LabError("wrk is not installed (apt install wrk)")
    scenario = parse_scenario({"name": "bench-balancer", "duration": 60, "topology": {"name": "single_lb", "clients": 1, "origins": 3},
                               "balancer": {"log_requests": False, "health": {"inter": 2.0}}}, "halab bench", topologies.lookup)
    out: Rounds = []
    with Lab(scenario, run_dir, say=say) as lab:
        specs = plan_services(scenario, lab.addresses, run_dir)
        lab.start_all(specs)  # the origins and halab's balancer (port 80)
        servers = next(s for s in specs if s.service == "balancer").config["servers"]
        conf = run_dir / "conf"
        conf.mkdir(exist_ok=True)
        for impl in ("haproxy", "nginx"):
            _start_real(lab, impl, scenario, servers, conf, run_dir)
        c1, lb1 = lab.net["c1"], lab.addresses["lb1"]
        targets = {DIRECT: f"http://{lab.addresses['o1']}/", **{impl: f"http://{lb1}:{port}/" for impl, port in PORTS.items()}}

        def saturated(url: str) -> dict[str, float]:
            c1.cmd(f"wrk -t1 -c{connections} -d1s {url} > /dev/null")  # warm up connections and caches
            return parse_wrk(c1.cmd(f"wrk -t1 -c{connections} -d{seconds:g}s --latency {url}"))

        names = list(targets)
        for r in range(rounds):
            order = rotated(names, r)
            out.append({name: saturated(targets[name]) for name in order})
            # The delay a balancer adds to one request shows with a single connection, one request at a time.
            light = one_connection_p50(c1, targets, order)
            for name in order:
                res = out[-1][name]
                res["p50_1conn"] = light[name]
                say(f"round {r + 1}/{rounds} {name:<13} {res['rps']:9.0f} req/s  p50 {res['p50'] * 1000:6.2f} ms  "
                    f"one connection p50 {res['p50_1conn'] * 1e6:5.0f} us")
    return out


def ratios(rounds: Rounds) -> dict[str, dict[str, list[float]]]:
    """Per balancer, per round: req/s vs HAProxy and added p50 vs HAProxy (same round)."""
    out: dict[str, dict[str, list[float]]] = {}
    for rnd in rounds:
        base = rnd[DIRECT]["p50_1conn"]
        ha = rnd["haproxy"]
        ha_added = ha["p50_1conn"] - base
        for name, r in rnd.items():
            if name == DIRECT:
                continue
            entry = out.setdefault(name, {"rps": [], "added": [], "rps_ratio": [], "added_ratio": []})
            entry["rps"].append(r["rps"])
            entry["added"].append(r["p50_1conn"] - base)
            entry["rps_ratio"].append(r["rps"] / ha["rps"])
            entry["added_ratio"].append((r["p50_1conn"] - base) / ha_added if ha_added > 0 else float("nan"))
    return out


def summary(rounds: Rounds) -> list[str]:
    direct = [rnd[DIRECT] for rnd in rounds]
    lines = [f"{len(rounds)} rounds; each cell: median (min-max) over the rounds, ratios taken within a round",
             "req/s: wrk with many connections; added p50: one connection, minus the direct-to-origin p50 of the same round",
             f"{'balancer':<14}{'req/s':>22}{'added p50 (us)':>20}{'req/s vs HAProxy':>22}{'added p50 vs HAProxy':>24}",
             f"{DIRECT:<14}{spread([d['rps'] for d in direct], '.0f'):>22}{'p50 ' + spread([d['p50_1conn'] * 1e6 for d in direct], '.0f'):>20}"]
    per_balancer = ratios(rounds)
    for name, r in per_balancer.items():
        lines.append(f"{name:<14}{spread(r['rps'], '.0f'):>22}{spread([a * 1e6 for a in r['added']], '.0f'):>20}"
                     f"{spread(r['rps_ratio'], '.2f'):>22}{spread(r['added_ratio'], '.2f'):>24}")
    halab = per_balancer.get("halab")
    if halab:
        lines.append("halab's targets: " + "; ".join(
            f"{what} met in {sum(ok(v) for v in values)}/{len(values)} rounds (median {statistics.median(values):.2f})"
            # judged at the two decimals printed, so a shown 2.00 is never a miss
            for what, values, ok in (("req/s >= 0.5 x HAProxy", halab["rps_ratio"], lambda v: round(v, 2) >= TARGET_RPS_RATIO),
                                     ("added p50 <= 2 x HAProxy", halab["added_ratio"], lambda v: round(v, 2) <= TARGET_ADDED_RATIO))))
    return lines


def client_outage(requests: list[dict[str, Any]], fault_at: float) -> float:
    """Seconds from the first failed request after ``fault_at`` to the next one that succeeded (by due time)."""
    span = outage_span(requests, fault_at)
    return 0.0 if span is None else span[1] - span[0]


def outage_span(requests: list[dict[str, Any]], fault_at: float) -> tuple[float, float] | None:
    """(first failed request, first success after it), by due time; None if nothing failed."""
    after = sorted((r for r in requests if r["t"] >= fault_at - 1.0), key=lambda r: r["t"])
    first_fail = next((r["t"] for r in after if not r["ok"]), None)
    if first_fail is None:
        return None
    recovered = next((r["t"] for r in after if r["ok"] and r["t"] > first_fail), None)
    return first_fail, recovered if recovered is not None else after[-1]["t"]


@dataclasses.dataclass(frozen=True)
class FailoverTiming:
    """How long each part of a trial lasts, from the advert interval: the bench follows the settings.

    The master stays off ``hold`` seconds: gw2's Master_Down_Interval plus a
    margin, so a takeover can always happen before gw1 is back. After the
    power comes back, gw1 (priority 150) preempts after its own
    Master_Down_Interval; the next cut comes ``settle`` seconds later.
    """

    interval: float
    mdi: float  # gw2's (priority 100): the takeover cannot come sooner
    hold: float
    settle: float

    @classmethod
    def of(cls, interval: float) -> "FailoverTiming":
        mdi = master_down_interval(100, interval)
        return cls(interval, mdi, hold=mdi + max(0.5, 3 * interval), settle=master_down_interval(150, interval) + 1.5)

    @property
    def per_trial(self) -> float:
        return 0.5 + self.hold + self.settle


def judge_trial(requests: list[dict[str, Any]], takeovers: list[float], cut: float, timing: FailoverTiming,
                last_advert: float | None = None) -> dict[str, Any]:
    """One power cut as the clients saw it; ``failover`` is False when gw2 never took over while gw1 was off (no outage is made up).

    ``silence``: from the master's last advert that reached gw2 to the first request served again. The
    outage alone depends on when, between two adverts, the power went (up to one interval of luck);
    counted from the last advert, it measures only what the backup and the network did.
    """
    took = next((t - cut for t in takeovers if cut <= t <= cut + timing.hold), None)
    window = [r for r in requests if cut - 1.0 <= r["t"] <= cut + timing.hold]
    span = outage_span(window, cut) if took is not None else None
    silence = span[1] - last_advert if span is not None and last_advert is not None else None
    return {"failover": took is not None, "takeover": took, "outage": (span[1] - span[0] if span else 0.0) if took is not None else None,
            "failed": sum(1 for r in window if not r["ok"]), "silence": silence, "served_again": span[1] if span else None}


@dataclasses.dataclass(frozen=True)
class WireTimes:
    """What gw2's capture saw of a takeover: gw1's adverts, gw2's own adverts and gw2's gratuitous ARPs for the VIP."""

    master_adverts: list[float]
    backup_adverts: list[float]
    backup_garps: list[float]


def wire_times(pcap: Path, master: str, backup: str, vip: str) -> WireTimes:
    """Read the capture at gw2 (VRRP and ARP, both directions): when each advert and each GARP for the VIP passed."""
    from scapy.layers.inet import IP
    from scapy.layers.l2 import ARP
    from scapy.utils import PcapReader

    times = WireTimes([], [], [])
    if pcap.exists():
        with PcapReader(str(pcap)) as packets:
            for p in packets:
                if IP in p and p[IP].proto == 112 and p[IP].src in (master, backup):
                    (times.master_adverts if p[IP].src == master else times.backup_adverts).append(float(p.time))
                elif ARP in p and p[ARP].psrc == vip and p[ARP].pdst == vip:
                    times.backup_garps.append(float(p.time))  # only a MASTER announces the VIP: gw1 is off in the window judged
    return times


def median_ms(steps: list[dict[str, float]], key: str) -> str:
    values = [st[key] for st in steps if not math.isnan(st[key])]
    return f"{statistics.median(values) * 1000:.1f} ms" if values else "-"


def takeover_steps(wire: WireTimes, cut: float, served_again: float | None, hold: float) -> dict[str, float] | None:
    """Where the time of one takeover went, from the wire: the backup's timer (the master's last advert to the backup's
    first advert), its first gratuitous ARP relative to that advert (negative: before it; halab announces the VIP
    first, keepalived advertises first), and the first request served again after the GARP."""
    last = max((t for t in wire.master_adverts if t <= cut), default=None)
    first = next((t for t in wire.backup_adverts if cut < t <= cut + hold), None)
    if last is None or first is None:
        return None
    garp = next((t for t in wire.backup_garps if t >= first - 0.05), None)  # a speaker may announce just before its advert
    steps = {"timer": first - last, "garp": (garp - first) if garp is not None else math.nan}
    steps["clients"] = (served_again - (garp if garp is not None else first)) if served_again is not None else math.nan
    return steps


LOSS_SECONDS = 20.0  # the healthy-master phase with lost adverts


def lose_adverts(host: Any, percent: int) -> None:
    """Drop ``percent`` % of the VRRP adverts arriving at ``host`` (nftables numgen: this kernel has no netem)."""
    out = host.cmd("nft add table inet halab_loss && nft add chain inet halab_loss input '{ type filter hook input priority 0; }' && "
                   f"nft add rule inet halab_loss input ip protocol vrrp numgen random mod 100 '<' {percent} drop && echo OK")
    if "OK" not in out:
        raise LabError(f"cannot drop adverts on {host.name}: {out.strip()}")


def run_failover_bench(run_dir: Path, trials: int = 5, interval: float = 0.1, rate: float = 200.0,
                       say: Any = print, loss: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Power off the VRRP master under load, ``trials`` times per speaker; outage as the clients saw it.

    With ``loss`` (percent), a last phase of ``LOSS_SECONDS`` leaves the master
    healthy but drops that share of the adverts gw2 receives: every takeover
    by gw2 then is a false failover (the price of a short interval on a lossy
    LAN). Its count is the extra row ``{"false_failovers": n, "seconds": s}``.
    """
    from lab.events import read_events
    from lab.net.faults import Faults
    from lab.net.roles import plan_load
    from lab.runner import load_scenario

    base = load_scenario("exercises/03-vrrp-redundancy/scenario.toml")
    timing = FailoverTiming.of(interval)
    results: dict[str, list[dict[str, Any]]] = {}
    for impl in ("halab", "keepalived"):
        scenario = dataclasses.replace(
            base, name=f"bench-failover-{impl}", duration=trials * timing.per_trial + 1 + (LOSS_SECONDS + 1 if loss else 0), faults=(),
            vrrp=dataclasses.replace(base.vrrp, impl=impl, advert_interval=interval, track=False),
            load=dataclasses.replace(base.load, rate=rate / len(base.load.clients), timeout=1.0))
        sub = run_dir / f"{impl}-{interval:g}s"
        with Lab(scenario, sub, say=say) as lab:
            lab.start_all(plan_services(scenario, lab.addresses, sub))
            faults = Faults(lab)
            # gw1's adverts as gw2 hears them: the phase of each cut within the advert interval
            # and gw2's own adverts and GARPs: where a takeover's time goes, on the wire, for either speaker
            capture = lab.net["gw2"].popen(["tcpdump", "-i", "gw2-eth0", "--immediate-mode", "-U", "-w", str(sub / "adverts.pcap"),
                                            "ip proto 112 or arp"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            lab.ledger.add_process(capture.pid, "tcpdump adverts")  # the lab's cleanup stops it, also after a crash
            time.sleep(master_down_interval(150, interval) + 0.5)  # gw1 is MASTER before the load starts
            start = time.time() + 0.5
            lab.start_all(plan_load(scenario, lab.addresses, sub, start))
            cuts = []
            for trial in range(trials):
                time.sleep(max(0.0, start + 0.5 + trial * timing.per_trial - time.time()))
                cuts.append(time.time())
                faults.apply("poweroff", "gw1")
                time.sleep(max(0.0, cuts[-1] + timing.hold - time.time()))
                faults.apply("poweron", "gw1")  # preempt: gw1 takes the VIP back before the next trial
            lossy = None
            if loss:
                time.sleep(max(0.0, start + 0.5 + trials * timing.per_trial - time.time()))
                lossy = time.time()
                lose_adverts(lab.net["gw2"], loss)
                time.sleep(LOSS_SECONDS)
                lab.net["gw2"].cmd("nft delete table inet halab_loss")
            lab.wait_exit([s for s in lab.services.values() if s.spec.service == "loadgen"], timeout=timing.per_trial * trials + 5)
            capture.terminate()
            capture.wait(timeout=5)
            events = read_events(sub)
        wire = wire_times(sub / "adverts.pcap", lab.addresses["gw1"], lab.addresses["gw2"], ACTIVE_STANDBY_VIP)
        requests = [e for e in events if e["kind"] == "request_finished"]
        takeovers = [e["t"] for e in events if e["kind"] == "vrrp_state_changed" and e["node"] == "gw2" and e["after"] == "MASTER"]
        results[impl] = [judge_trial(requests, takeovers, cut, timing, max((a for a in wire.master_adverts if a <= cut), default=None))
                         for cut in cuts]
        for cut, row in zip(cuts, results[impl]):
            row["steps"] = takeover_steps(wire, cut, row["served_again"], timing.hold) if row["failover"] else None
        if lossy is not None:
            results[impl].append({"false_failovers": sum(1 for t in takeovers if lossy <= t <= lossy + LOSS_SECONDS),
                                  "seconds": LOSS_SECONDS, "loss": loss})
        say(f"interval {interval:g} s, {impl:<11} outages: " + ", ".join(
            f"{r['outage']:.3f}" if r["failover"] else "no failover" for r in results[impl] if "failover" in r))
    return results


def failover_summary(sweep: dict[float, dict[str, list[dict[str, Any]]]]) -> list[str]:
    """One row per interval and speaker, and a verdict per interval: a failover in every trial, halab at most as slow
    as keepalived, every worst outage below Master_Down_Interval + one interval.

    "As slow" is judged on what the speaker controls, read from gw2's capture: from the master's last advert to the
    backup's first gratuitous ARP, the moment the clients can reach the new master. The clients' own outage adds
    when, within their request cadence (10 ms per client here), their next request fell: the same luck for both
    speakers and far coarser than the difference between them, so it is printed, not judged. Without a capture:
    the last advert to the first request served again, else the clients' median outage."""
    lines = [f"{'interval':>9}{'MDI':>9}  {'speaker':<11}{'median outage':>14}{'worst outage':>13}{'median takeover':>16}"
             f"{'from last advert':>17}{'failed/trial':>13}{'failovers':>11}"]
    verdicts = []
    for interval, results in sorted(sweep.items(), reverse=True):
        timing = FailoverTiming.of(interval)
        med: dict[str, float] = {}
        worst: dict[str, float] = {}
        silence: dict[str, float] = {}
        announced: dict[str, float] = {}  # the master's last advert to the backup's first GARP, on gw2's capture
        complete = True
        for impl, all_rows in results.items():
            rows = [r for r in all_rows if "failover" in r]
            shown = [r for r in rows if r["failover"]]
            complete = complete and len(shown) == len(rows)
            if not shown:
                lines.append(f"{interval:>8g}s{timing.mdi:>8.3f}s  {impl:<11}  no failover in any trial")
                continue
            outages = [r["outage"] for r in shown]
            med[impl], worst[impl] = statistics.median(outages), max(outages)
            quiet = [r["silence"] for r in shown if r.get("silence") is not None]
            if len(quiet) == len(shown):
                silence[impl] = statistics.median(quiet)
            lines.append(f"{interval:>8g}s{timing.mdi:>8.3f}s  {impl:<11}{med[impl]:>12.3f} s{worst[impl]:>11.3f} s"
                         f"{statistics.median(r['takeover'] for r in shown):>14.3f} s"
                         + (f"{silence[impl]:>15.3f} s" if impl in silence else f"{'-':>17}") +
                         f"{statistics.mean(r['failed'] for r in rows):>13.1f}{len(shown):>8}/{len(rows)}")
            steps = [r["steps"] for r in shown if r.get("steps")]
            if len(steps) == len(shown) and all(not math.isnan(st["garp"]) for st in steps):
                announced[impl] = statistics.median(st["timer"] + st["garp"] for st in steps)
            if steps:
                lines.append(f"{'':>19}  {impl:<11}takeover, step by step (medians, from gw2's capture): timer (gw1's last advert to "
                             f"gw2's first) {median_ms(steps, 'timer')}, its first GARP {median_ms(steps, 'garp')} after that advert"
                             + (f" (last advert to GARP {announced[impl] * 1000:.2f} ms)" if impl in announced else "")
                             + f", then the first request served {median_ms(steps, 'clients')} after the GARP")
            for r in all_rows:
                if "false_failovers" in r:
                    lines.append(f"{'':>19}  {impl:<11}with {r['loss']} % of adverts lost at gw2: {r['false_failovers']} false "
                                 f"failovers in {r['seconds']:g} s (the master sends {1 / interval:g} adverts/s)")
        if "halab" in med and "keepalived" in med:
            judged, what = ((announced, "time from the master's last advert to the backup's GARP, on the wire")
                            if {"halab", "keepalived"} <= set(announced) else
                            (silence, "time from the last advert") if {"halab", "keepalived"} <= set(silence) else (med, "outage"))
            ratio = judged["halab"] / judged["keepalived"] if judged["keepalived"] else (1.0 if judged["halab"] == 0 else math.inf)
            bound = timing.mdi + interval
            ok = complete and ratio <= 1.0 and all(w < bound for w in worst.values())
            verdicts.append(f"{interval:g} s: median {what}: halab {judged['halab'] * 1000:.2f} ms, keepalived "
                            f"{judged['keepalived'] * 1000:.2f} ms, ratio {ratio:.4f}; worst {max(worst.values()):.3f} s, bound "
                            f"{bound:.3f} s (MDI + one interval); {'a failover in every trial' if complete else 'a trial without failover'}"
                            f": {'met' if ok else 'NOT met'}")
    return lines + verdicts
