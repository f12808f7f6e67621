"""Turn a run's events into the report: terminal table, JSON, Markdown, PNG.

``build(run_dir)`` needs only the run directory (its ``events/`` and the
``run.json`` the runner wrote), so ``halab report RUN_DIR`` rebuilds the
same report offline, on any machine, without root.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

from lab.analysis.metrics import Metrics, Settings, check_expectations, compute
from lab.core.availability import format_duration, format_nines, format_percent
from lab.core.cluster import LOCAL, pair_bound
from lab.events import read_clocks, read_events


def build(run_dir: Path) -> Metrics:
    run_dir = Path(run_dir)
    meta_path = run_dir / "run.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    settings = Settings(**meta.get("settings", {}))
    events = read_events(run_dir)
    if not any(e["kind"] == "request_finished" for e in events):
        raise ValueError(f"{run_dir} has no request records (events/*-loadgen.jsonl): did the load run?")
    metrics = compute(events, settings, meta.get("scenario", run_dir.name))
    placement, offsets = read_clocks(run_dir)
    clocks = {"nodes": placement, "servers": offsets} if offsets else {}
    return dataclasses.replace(metrics, checks=check_expectations(metrics, meta.get("expect", {})), clocks=clocks)


def write(metrics: Metrics, run_dir: Path, plot: bool = True) -> list[Path]:
    run_dir = Path(run_dir)
    paths = [run_dir / "report.json", run_dir / "report.md"]
    paths[0].write_text(json.dumps(to_dict(metrics), indent=1, default=_json_default))
    paths[1].write_text(to_markdown(metrics))
    if plot:
        from lab.analysis.plot import timeline

        paths.append(timeline(metrics, run_dir / "timeline.png"))
    return paths


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    raise TypeError(type(value).__name__)


def to_dict(m: Metrics) -> dict[str, Any]:
    d = dataclasses.asdict(m)
    d["failed"] = m.failed
    d["nines"] = None if math.isinf(m.nines) else m.nines
    for f, out in zip(m.faults, d["faults"]):
        out["detection"] = f.detection
        out["recovery"] = f.recovery
    for o, out in zip(m.outages, d["outages"]):
        out["duration"] = o.duration
    return d


def _clock(t: float, m: Metrics) -> str:
    """Seconds since the load started: the timeline a student reads."""
    return f"{t - m.load_start:6.2f}"


def _secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _across(m: Metrics, node: str, value: float | None) -> str:
    """A time from the lab's event (this machine) to one of ``node``'s, with both clocks' error bound when ``node`` ran on
    another server of a cluster lab."""
    if value is None or not m.clocks or not node:
        return _secs(value)
    bound = pair_bound(LOCAL, m.clocks["nodes"].get(node, LOCAL), m.clocks["servers"])
    return _secs(value) + (f" ±{1000 * bound:.2f} ms" if bound else "")


REFUSAL_MEANING = {
    "smuggling": "framing two parsers could read differently: refused (400)", "malformed": "not HTTP/1.1 (400)",
    "head_too_large": "head, header count or line over the limit (431)", "body_too_large": "body over max_body (413)",
    "target_too_long": "request target over 8 kB (414)", "version": "HTTP/0.9, /2 or an unknown version (400, 505)",
    "method": "CONNECT at a gateway (405)", "expectation": "an Expect other than 100-continue (417)",
    "not_implemented": "a transfer coding other than chunked (501)",
    "rate_limited": "over one client's request rate: an HTTP flood answered at the door (429)",
}


def sections(m: Metrics) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report as (title, header, rows) tables, shared by the text and Markdown forms."""
    out = []
    out.append(("Availability", ["measure", "value"], [
        ["requests sent", str(m.total)],
        ["succeeded / failed", f"{m.ok} / {m.failed}"],
        ["request availability", f"{format_percent(m.request_availability)}  ({format_nines(m.request_availability)} nines)"],
        ["time-based availability", f"{format_percent(m.time_availability)}  (share of time slots that met the goal)"],
        ["load duration", f"{m.load_end - m.load_start:.1f} s"],
        ["errors by kind", ", ".join(f"{k}: {v}" for k, v in m.errors.items()) or "none"],
        ["succeeded only thanks to a retry", f"{m.saved_by_retry}  (the balancer tried another server)"],
        ["connections lost under a request", f"{m.connections_lost}  (a kept-alive connection was reset or closed: a failover shows here)"],
        ["succeeded only after the client resent it", f"{m.resent}" + (f"  (median latency {format_duration(m.resent_latency)})"
                                                                        if m.resent_latency is not None else "")],
        ["requests counted twice", str(len(m.duplicate_ids))],
        *([["succeeded only because a cache served a stale copy", f"{m.stale_saved}  (stale-if-error: the origins had failed)"]]
          if m.caches else []),
    ]))
    bound = f" (bound {m.worst_detection:.2f} s)" if m.worst_detection else ""
    out.append((f"Faults: injected, detected{bound}, repaired", ["at (s)", "fault", "affects", "detected after", "failed before detection",
                                                        "routed to it while DOWN", "repaired at (s)", "back UP after"], [
        [_clock(f.at, m), f"{f.action} {f.target}", ", ".join(f.affects) or "—", _across(m, f.detected_by, f.detection) + (f" ({f.detected_by})" if f.detected_by else ""),
         str(f.failed_before_detection), "not logged" if f.routed_while_down is None else str(f.routed_while_down + f.failed_after_detection),
         "—" if f.reverted_at is None else _clock(f.reverted_at, m), _across(m, f.detected_by, f.recovery)]
        for f in m.faults]))
    if any(len(f.per_balancer) > 1 for f in m.faults):
        out.append(("Each balancer judged by its own view", ["at (s)", "fault", "balancer", "detected after", "routed to it while it held it DOWN",
                                                            "back UP after repair"], [
            [_clock(f.at, m), f"{f.action} {f.target}", node, _secs(v["detection"]), str(v["routed_while_down"]), _secs(v["recovery"])]
            for f in m.faults if len(f.per_balancer) > 1 for node, v in f.per_balancer.items()]))
    if m.recoveries:
        out.append(("Recovery after each repair (back to a steady state)", ["repaired at (s)", "repair", "one MASTER per VIP",
                                                                            "every origin UP everywhere", "last failed request", "reconverged"], [
            [_clock(r.at, m), r.repair[:40], _secs(r.vip) if r.has_vrrp else "no VRRP", _secs(r.health), _secs(r.success),
             "cut short by the next fault" if r.cut_short else "never" if r.took is None else _secs(r.took)] for r in m.recoveries]))
    out.append(("Outage windows (failed requests close together)", ["from (s)", "to (s)", "duration", "failed / sent",
                                                                     "succeeded only after the client resent it", "cause"], [
        [_clock(o.start, m), _clock(o.end, m), _secs(o.duration), f"{o.failed} / {o.total}", str(o.resent), o.cause] for o in m.outages]))
    if m.failovers or m.vip_owners:
        out.append(("VIP failover (VRRP)", ["at (s)", "fault", "VIP", "new MASTER", "took", "Master_Down_Interval"], [
            [_clock(f.at, m), f.fault, f.vip, f.new_master or "nobody", _across(m, f.new_master or "", f.took), _secs(f.master_down_interval)]
            for f in m.failovers]))
        out.append(("VRRP state changes", ["at (s)", "node", "VIP", "change", "why"], [
            [_clock(v["t"], m), v["node"], v["vip"], f"{v['before']} -> {v['after']}", v["reason"][:60]] for v in m.vip_owners]))
    if m.gateway_load:
        out.append(("Gateway load before and during the first fault", ["gateway", "req/s before", "req/s during", "CPU before", "CPU during"], [
            [node, *(f"{w[k]['rps']:.0f}" if k in w else "—" for k in ("before", "during")),
             *(f"{w[k]['cpu']:.0f}%" if k in w else "—" for k in ("before", "during"))]
            for node, w in m.gateway_load.items()]))
    if m.split_brain:
        out.append(("Split brain: two MASTERs for one VIP", ["VIP", "from (s)", "to (s)", "what it means"], [
            [vip, _clock(a, m), _clock(b, m), "both answer ARP for the VIP; clients and the switch flap between them"]
            for vip, a, b in m.split_brain]))
        out.append(("Clients moved between gateways during split brain (ARP flapping)", ["client", "times"], [
            [client, str(n)] for client, n in sorted(m.gateway_flaps.items())] or [["(none)", "0: each client stuck to one side"]]))
    if m.key_moves:
        out.append(("Keys moved when a server left or came back (hashing)", ["fault", "keys seen before and after", "moved",
                                                                        "had to move (on that server)", "moved anyway"], [
            [fault, str(k.keys), f"{k.moved} ({k.fraction:.0%})", str(k.from_changed), f"{k.others_moved} ({k.others_fraction:.0%})"]
            for fault, k in m.key_moves]))
    if m.service_failures:
        out.append(("Services that failed (a loop died: the lab cannot be trusted after this)", ["at (s)", "node", "service", "where", "error"], [
            [_clock(f["t"], m), f["node"], f["service"], f["task"], f["error"][:70]] for f in m.service_failures]))
    if m.refused or m.aborted:
        timeouts = {"head_timeout": "head not complete in time (slowloris)", "body_timeout": "body stalled", "client_closed": "client left mid-body"}
        out.append(("Requests refused or cut off by a gateway (hostile or broken clients)", ["gateway", "kind", "requests", "what it means"], [
            [node, kind, str(n), timeouts.get(kind, REFUSAL_MEANING.get(kind, ""))]
            for table in (m.refused, m.aborted) for node, kinds in table.items() for kind, n in kinds.items()]))
    if m.caches:
        meaning = {"TCP_HIT": "a fresh stored copy: the origin was not asked", "TCP_MISS": "asked the origin (stored if allowed)",
                   "TCP_REFRESH_UNMODIFIED": "stale copy validated: the origin said 304, only headers crossed",
                   "TCP_REFRESH_MODIFIED": "stale copy replaced by the origin's new answer",
                   "TCP_REFRESH_FAIL_OLD": "the origin failed; stale-if-error let the stale copy answer",
                   "TCP_REFRESH_FAIL_ERR": "the origin failed and the stale copy may not be served: 504",
                   "TCP_STALE_HIT": "stale copy served while it is revalidated (stale-while-revalidate)"}
        rows = []
        for node, results in m.caches.items():
            total = sum(results.values())
            hits = sum(n for r, n in results.items() if r in ("TCP_HIT", "TCP_STALE_HIT", "TCP_REFRESH_UNMODIFIED", "TCP_REFRESH_FAIL_OLD"))
            rows.append([node, "hit ratio", f"{hits} of {total}", f"{hits / total:.1%} answered from the store" if total else ""])
            rows.append([node, "asked the origins", str(m.origin_asks.get(node, 0)),
                         "requests this cache sent to an origin, validations included (collapsed misses count once)"])
            rows += [[node, r, str(n), meaning.get(r, "")] for r, n in results.items()]
        rows = [row + [format_duration(m.cache_latency[row[1]]) if m.cache_latency.get(row[1]) is not None else "—"] for row in rows]
        out.append(("Caches (results as Squid's access.log names them)", ["cache", "result", "requests", "what it means",
                                                                          "p50 latency the clients saw"], rows))
    if m.proxies:
        meaning = {"TCP_MISS": "forwarded to the origin (no cache)", "TCP_TUNNEL": "a CONNECT tunnel (bytes it could not read)",
                   "TCP_DENIED": "refused by the access rules (403) or asked to log in (407)", "NONE_NONE": "malformed or not answerable"}
        out.append(("Forward proxies (results as Squid's access.log names them)", ["proxy", "result", "requests", "what it means"], [
            [node, result, str(n), meaning.get(result, "")] for node, results in m.proxies.items() for result, n in results.items()]))
    if m.proxy_moves:
        firsts: dict[tuple[str, str, str], list[float]] = {}
        for e in m.proxy_moves:
            firsts.setdefault((e["client"], e["from"], e["to"]), []).append(e["t"])
        out.append(("Clients that could not reach their proxy and used the next one", ["client", "from", "to", "first at (s)",
                                                                                       "last at (s)", "times"], [
            [client, a, b, _clock(ts[0], m), _clock(ts[-1], m), str(len(ts))] for (client, a, b), ts in sorted(firsts.items())]))
    several_targets = len({c.get("target") for c in m.clients.values()}) > 1
    # shown when clients take different routes, or an L4 balancer placed them (which origins each reached is the lesson)
    if any(c["route"] != "direct" for c in m.clients.values()) or several_targets or m.l4_changes:
        out.append(("Each client's view (its route to the service)", ["client", "through", "sent", "failed",
                                                                      "longest time without an answer", "slowest success", "served by"], [
            [client, c["route"] if c["route"] != "direct" or not several_targets else c["target"], str(c["sent"]),
             str(c["failed"]) + (" (" + ", ".join(f"{kind} {n}" for kind, n in c["errors"].items()) + ")" if c.get("errors") else ""),
             _secs(c["longest_gap"]) if c["longest_gap"] else "—",
             format_duration(c["worst_latency"]) if c.get("worst_latency") is not None else "—",
             " ".join(f"{o} {n}" for o, n in c.get("served_by", {}).items()) or "—"]
            for client, c in m.clients.items()]))
    if m.l4_changes:
        out.append(("What the L4 balancers changed (new flows follow the table; established ones stay where they are)",
                    ["at (s)", "node", "what", "detail"], [[_clock(c["t"], m), c["node"], c["what"], c["detail"]] for c in m.l4_changes]))
    for lines in m.paths:
        out.append((f"The path of one request ({lines[0].split(':')[0]})", ["hop"], [[line.strip()] for line in lines]))
    total_ok = sum(m.served_by.values()) or 1
    out.append(("Who served the successful requests", ["origin", "requests", "share", "failed requests it was blamed for"], [
        [name, str(n), f"{n / total_ok:.1%}", str(m.blamed.get(name, 0))] for name, n in m.served_by.items()]))
    out.append(("Latency of successful requests (from when each was due)", ["when", "count", "p50", "p95", "p99", "max"], [
        [when, str(s["count"])] + [format_duration(s[k]) if s[k] is not None else "—" for k in ("p50", "p95", "p99", "max")]
        for when, s in m.latency.items()]))
    if m.clocks:
        servers = m.clocks["servers"]
        out.append(("Clocks (a lab over several servers: their events put on this machine's clock)",
                    ["server", "nodes", "offset", "error bound", "best round trip", "samples"], [
            [server, " ".join(sorted(n for n, s in m.clocks["nodes"].items() if s == server)) or "—", f"{1000 * o.offset:+.3f} ms",
             f"±{1000 * o.bound:.3f} ms", f"{1000 * o.rtt:.3f} ms", str(o.samples)] for server, o in servers.items()]))
    if m.checks:
        out.append(("Expectations", ["check", "result", "detail"], [[c.name, "PASS" if c.passed else "FAIL", c.detail] for c in m.checks]))
    return out


def to_markdown(m: Metrics) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.load_start))
    lines = [f"# halab report: {m.scenario}", "", f"Load started {started}; times below are seconds since then.", ""]
    for title, header, rows in sections(m):
        lines += [f"## {title}", ""]
        if not rows:
            lines += ["(none)", ""]
            continue
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    lines += ["![timeline](timeline.png)", ""]
    return "\n".join(lines)


def print_report(m: Metrics, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.rule(f"[bold]halab report: {m.scenario}")
    for title, header, rows in sections(m):
        table = Table(title=title, title_justify="left", show_lines=False)
        for h in header:
            table.add_column(h)
        for row in rows:
            style = "red" if row and row[1:2] == ["FAIL"] else None
            table.add_row(*row, style=style)
        if not rows:
            table.add_row(*(["(none)"] + [""] * (len(header) - 1)))
        console.print(table)
