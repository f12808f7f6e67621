"""What a run measured, computed from its events alone (pure: no I/O).

Definitions used throughout halab's reports:

- **Request availability**: successful requests / requests sent. A request
  succeeds when the client got a 2xx or 3xx answer before its timeout.
- **Time-based availability**: the run is cut into slots of ``bucket``
  seconds (by when requests were due); a slot is *up* when at least
  ``good_ratio`` of its requests succeeded. Availability = up slots / slots
  with traffic. This is the "good minutes" view of an SLO, and it punishes a
  partial outage (one origin of three failing) as a whole bad slot.
- **Outage window**: failed requests closer than ``merge_gap`` seconds to
  each other (by due time) form one window, from the first to the last.
- **Detection time** of a fault: from the fault to the health DOWN of a
  server it affects. **Recovery**: from the repair to that server's UP. With
  several balancers each is judged by its own view (its own DOWN and UP, the
  requests it routed while *it* held the server DOWN); a fault's row shows
  the slowest of the balancers that saw the server or sent it traffic, and
  names it.
- Percentiles are nearest-rank over successful requests' latency, measured
  from when each request was due (open loop).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from lab.analysis import path
from lab.analysis.keys import KeyMoves, key_moves
from lab.analysis.recovery import Recovery, recoveries
from lab.analysis.vrrp_analysis import Failover, failovers, gateway_flaps, gateway_load, split_brain
from lab.core.availability import nines
from lab.core.faults import REPAIRS
from lab.events import node_names


@dataclass(frozen=True)
class Settings:
    bucket: float = 1.0
    good_ratio: float = 0.99
    merge_gap: float = 1.0
    worst_detection: float | None = None  # from the health-check settings


@dataclass(frozen=True)
class Outage:
    start: float
    end: float
    failed: int
    total: int
    cause: str
    resent: int = 0  # requests in the window that succeeded only after the client resent them on a new connection

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class FaultOutcome:
    action: str
    target: str
    at: float
    affects: tuple[str, ...]
    reverted_at: float | None
    detected_at: float | None
    recovered_at: float | None
    failed_before_detection: int
    failed_after_detection: int
    routed_while_down: int | None  # None: the balancer did not log routing
    detected_by: str = ""  # the balancer whose detection (the slowest) the row shows
    per_balancer: Mapping[str, Mapping[str, float | int | None]] = field(default_factory=dict)  # node -> detection, recovery, routed_while_down

    @property
    def detection(self) -> float | None:
        return None if self.detected_at is None else self.detected_at - self.at

    @property
    def recovery(self) -> float | None:
        if self.recovered_at is None or self.reverted_at is None:
            return None
        return self.recovered_at - self.reverted_at


@dataclass(frozen=True)
class Slot:
    start: float
    total: int
    ok: int
    p50: float | None
    p99: float | None


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Metrics:
    scenario: str
    load_start: float
    load_end: float
    total: int
    ok: int
    errors: Mapping[str, int]
    request_availability: float
    time_availability: float
    outages: tuple[Outage, ...]
    faults: tuple[FaultOutcome, ...]
    served_by: Mapping[str, int]
    blamed: Mapping[str, int]
    latency: Mapping[str, Mapping[str, float | None]]
    slots: tuple[Slot, ...]
    duplicate_ids: tuple[str, ...]
    saved_by_retry: int
    health_changes: tuple[Mapping[str, Any], ...]
    worst_detection: float | None = None  # inter + fall x timeout + (fall-1) x fastinter, from the scenario's health settings
    failovers: tuple[Failover, ...] = ()
    vip_owners: tuple[Mapping[str, Any], ...] = ()  # every VRRP state change: t, node, vip, after
    split_brain: tuple[tuple[str, float, float], ...] = ()  # (vip, from, to): two MASTERs at once
    gateway_load: Mapping[str, Mapping[str, Mapping[str, float]]] = field(default_factory=dict)  # node -> before/during -> rps, cpu
    gateway_flaps: Mapping[str, int] = field(default_factory=dict)  # client -> times its serving gateway changed during split brain
    key_moves: tuple[tuple[str, KeyMoves], ...] = ()  # (fault, moves) when the load used many keys (hashing lessons)
    recoveries: tuple[Recovery, ...] = ()  # one per repair after which nothing was broken
    connections_lost: int = 0  # kept-alive connections a client found reset or closed under a request
    resent: int = 0  # requests the client resent on a new connection after that, and that then succeeded
    resent_latency: float | None = None  # their median latency (from when due): what resending cost
    refused: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # gateway -> kind -> requests refused at the door
    aborted: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # gateway -> why -> requests cut off mid-body
    service_failures: tuple[Mapping[str, Any], ...] = ()  # every service_failed: t, node, service, task, error
    proxies: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # forward proxy -> Squid result code -> requests
    proxy_moves: tuple[Mapping[str, Any], ...] = ()  # every proxy_failover: t, client, from, to, error
    paths: tuple[tuple[str, ...], ...] = ()  # the hops of a sample request through a proxy, and of a direct one
    clients: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # client -> route, sent, failed, longest gap
    caches: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # cache node -> Squid result code -> requests
    clocks: Mapping[str, Any] = field(default_factory=dict)  # a lab over several servers: "nodes" -> server, "servers" -> Offset
    stale_saved: int = 0  # requests answered with a stale copy because the origins failed (stale-if-error)
    cache_latency: Mapping[str, float | None] = field(default_factory=dict)  # Squid result code -> p50 latency the client saw
    origin_asks: Mapping[str, int] = field(default_factory=dict)  # cache node -> requests it sent to an origin
    l4_changes: tuple[Mapping[str, Any], ...] = ()  # every L4 table change, flush and failed connection: t, node, what, detail
    checks: tuple[Check, ...] = field(default=())

    @property
    def failed(self) -> int:
        return self.total - self.ok

    @property
    def nines(self) -> float:
        return nines(self.request_availability)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of already sorted ``values``."""
    if not values:
        return None
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[rank - 1]


def latency_summary(latencies: Iterable[float]) -> dict[str, float | None]:
    ordered = sorted(latencies)
    return {"count": len(ordered), "p50": percentile(ordered, 50), "p95": percentile(ordered, 95), "p99": percentile(ordered, 99),
            "max": ordered[-1] if ordered else None}


def fault_periods(events: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], float | None]]:
    """Each applied fault with the time it was reverted (None if it never was)."""
    periods = []
    for i, e in enumerate(events):
        if e["kind"] != "fault_applied":
            continue
        reverted = next((r["t"] for r in events[i + 1:] if r["kind"] == "fault_reverted"
                         and REPAIRS.get(r["action"]) == e["action"] and r["target"] == e["target"]), None)
        periods.append((e, reverted))
    return periods


def down_intervals(events: Sequence[Mapping[str, Any]], end: float) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Per (balancer, server), the intervals during which that balancer held the server DOWN.

    A balancer that restarts (crash, poweron) starts with fresh health: its
    DOWN ends with the process that held it.
    """
    intervals: dict[tuple[str, str], list[tuple[float, float]]] = {}
    since: dict[tuple[str, str], float] = {}
    for e in events:
        if e["kind"] == "service_ready" and "servers" in e:
            for server in e["servers"]:
                key = (e["node"], server)
                if key in since:
                    intervals.setdefault(key, []).append((since.pop(key), e["t"]))
            continue
        if e["kind"] != "health_changed":
            continue
        key = (e["node"], e["server"])
        if e["after"] == "DOWN":
            since.setdefault(key, e["t"])
        elif key in since:
            intervals.setdefault(key, []).append((since.pop(key), e["t"]))
    for key, t in since.items():
        intervals.setdefault(key, []).append((t, end))
    return intervals


def _inside(t: float, intervals: Iterable[tuple[float, float]]) -> bool:
    return any(a < t < b for a, b in intervals)


def compute(events: Sequence[Mapping[str, Any]], settings: Settings = Settings(), scenario: str = "") -> Metrics:
    events = sorted(events, key=lambda e: e["t"])
    requests = [e for e in events if e["kind"] == "request_finished"]
    starts = [e["t"] for e in events if e["kind"] == "load_started"]
    load_start = min(starts) if starts else (requests[0]["t"] if requests else 0.0)
    load_end = max((e["t"] for e in requests), default=load_start)
    load_end = max(load_end, max((e["t"] + e.get("duration", 0) for e in events if e["kind"] == "load_started"), default=load_end))
    ok = [r for r in requests if r["ok"]]
    failures = [r for r in requests if not r["ok"]]
    ids = Counter(r["id"] for r in requests)
    periods = fault_periods(events)
    routed = [e for e in events if e["kind"] == "request_routed"]
    down = down_intervals(events, load_end + 60)

    def in_fault(t: float) -> bool:
        return any(f["t"] <= t < (rev if rev is not None else load_end + 1) for f, rev in periods)

    faults = tuple(_fault_outcome(f, rev, events, failures, routed, down) for f, rev in periods)

    return Metrics(
        scenario=scenario,
        load_start=load_start,
        load_end=load_end,
        total=len(requests),
        ok=len(ok),
        errors=dict(Counter(r["error"] or "?" for r in failures).most_common()),
        request_availability=len(ok) / len(requests) if requests else 1.0,
        time_availability=_time_availability(requests, load_start, settings),
        outages=tuple(_outages(failures, requests, periods, settings.merge_gap)),
        faults=faults,
        served_by=dict(sorted(Counter(r["served_by"] for r in ok if r.get("served_by")).items())),
        blamed=dict(sorted(Counter(r["upstream"] for r in failures if r.get("upstream")).items())),
        latency={
            "all": latency_summary(r["latency"] for r in ok),
            "during faults": latency_summary(r["latency"] for r in ok if in_fault(r["t"])),
            "outside faults": latency_summary(r["latency"] for r in ok if not in_fault(r["t"])),
        },
        slots=tuple(_slots(requests, load_start, settings.bucket)),
        duplicate_ids=tuple(sorted(i for i, n in ids.items() if n > 1)),
        saved_by_retry=sum(1 for r in ok if r.get("retries")),
        health_changes=tuple({"t": e["t"], "node": e["node"], "server": e["server"], "after": e["after"], "reason": e.get("reason", "")}
                             for e in events if e["kind"] == "health_changed"),
        worst_detection=settings.worst_detection,
        failovers=tuple(failovers(events, periods)),
        vip_owners=tuple({"t": e["t"], "node": e["node"], "vip": e.get("vip"), "before": e["before"], "after": e["after"],
                          "reason": e.get("reason", "")} for e in events if e["kind"] == "vrrp_state_changed"),
        split_brain=tuple(split_brain(events, load_end)),
        gateway_load=gateway_load(events, periods, load_start, load_end),
        gateway_flaps=gateway_flaps(events, split_brain(events, load_end)),
        key_moves=_key_moves(requests, faults, load_start, load_end),
        recoveries=tuple(recoveries(events, periods, requests, load_end)),
        connections_lost=sum(1 for e in events if e["kind"] == "connection_lost"),
        resent=sum(1 for r in ok if r.get("resent")),
        resent_latency=percentile(sorted(r["latency"] for r in ok if r.get("resent")), 50),
        refused=_by_node(events, "request_rejected", "reason"),
        aborted=_by_node(events, "request_aborted", "reason"),
        service_failures=tuple(
            {"t": e["t"], "node": e["node"], "service": e.get("service", "?"), "task": e.get("task", "?"), "error": e.get("error", "")}
            if e["kind"] == "service_failed" else
            {"t": e["t"], "node": e.get("target", "?"), "service": e.get("service", "?"), "task": "(the process)",
             "error": f"exited by itself with code {e.get('code')}"}
            for e in events if e["kind"] in ("service_failed", "service_exited")),
        proxies=_by_node(events, "proxy_request", "result"),
        proxy_moves=tuple({"t": e["t"], "client": e["node"], "from": e["proxy"], "to": e["next"], "error": e["error"]}
                          for e in events if e["kind"] == "proxy_failover"),
        paths=tuple(tuple(path.hops(events, rid)) for rid in path.samples(events)),
        clients=per_client(events, requests),
        caches=_by_node(events, "cache_result", "squid"),
        stale_saved=sum(1 for e in events if e["kind"] == "cache_result" and e.get("squid") == "TCP_REFRESH_FAIL_OLD"),
        cache_latency=cache_latency(events, requests),
        origin_asks=origin_asks(events),
        l4_changes=l4_changes(events),
    )


def l4_changes(events: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    """What the L4 balancers did to the traffic, in order: table changes (with the share of clients' hashes that moved),
    flows cut, and connections a relay could not place anywhere."""
    out = []
    for e in events:
        if e["kind"] == "l4_table" and e["reason"] != "start":
            moved = f", {e['moved']:.0%} of the hash space now leads elsewhere" if e.get("moved") is not None else ""
            slots = " ".join(f"{n}:{k}" for n, k in sorted(e["slots"].items())) or "none: new flows refused"
            out.append({"t": e["t"], "node": e["node"], "what": f"table ({e['reason']})", "detail": f"slots {slots}{moved}"})
        elif e["kind"] == "flows_flushed":
            out.append({"t": e["t"], "node": e["node"], "what": "flows cut", "detail": f"{e['flows']} flows to {e['server']} deleted"})
        elif e["kind"] == "connection_failed":
            out.append({"t": e["t"], "node": e["node"], "what": "connection refused", "detail": f"{e['client']}: {e['error']}"})
    return tuple(out)


def cache_latency(events: Sequence[Mapping[str, Any]], requests: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """The median latency clients saw, by what the cache did (joined by request id): what a hit saves."""
    latency = {r["id"]: r["latency"] for r in requests if r.get("ok")}
    by_result: dict[str, list[float]] = {}
    for e in events:
        if e["kind"] == "cache_result" and e.get("id") in latency:
            by_result.setdefault(e["squid"], []).append(latency[e["id"]])
    return {result: percentile(sorted(values), 50) for result, values in sorted(by_result.items())}


def per_client(events: Sequence[Mapping[str, Any]], requests: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each client's own view: how it reached the service, what failed, its longest time without a success, and
    which origins answered it (one origin for every request: a kept-alive connection pinned by an L4 balancer).

    The longest gap is measured between the due times of two successive
    successful requests that have failures between them: how long that
    client could not get an answer, whatever the reason (this is how a PAC
    list's failover and a VRRP pair's compare on one timeline). The worst
    latency of a success shows the other cost: a request that waited for a
    dead proxy's connect timeout before it went to the next one.
    """
    routes = {e.get("node", "?"): e.get("proxies") for e in events if e["kind"] == "load_started"}
    names = node_names(next((e for e in events if e["kind"] == "lab_built"), {}))
    aims = {e.get("node", "?"): names.get(e.get("target", ""), e.get("target", "?")) for e in events if e["kind"] == "load_started"}
    out: dict[str, dict[str, Any]] = {}
    for client in sorted({r.get("node", "?") for r in requests}):
        mine = [r for r in requests if r.get("node", "?") == client]
        longest, last_ok, failed_since = 0.0, None, False
        for r in mine:
            if not r["ok"]:
                failed_since = True
                continue
            if last_ok is not None and failed_since:
                longest = max(longest, r["t"] - last_ok)
            last_ok, failed_since = r["t"], False
        route = routes.get(client)
        served = Counter(r.get("served_by") or "?" for r in mine if r["ok"])
        errors = Counter(r.get("error") or (f"http_{r['status']}" if r.get("status") else "?") for r in mine if not r["ok"])
        out[client] = {"route": ", ".join(route) if route else "direct", "target": aims.get(client, "?"), "sent": len(mine),
                       "served_by": dict(sorted(served.items())), "errors": dict(errors.most_common()),
                       "failed": sum(1 for r in mine if not r["ok"]), "longest_gap": round(longest, 3),
                       "worst_latency": max((r["latency"] for r in mine if r["ok"]), default=None)}
    return out


# Squid's result codes for a request it sent on (its access log names no server)
SQUID_ASKED = frozenset({"TCP_MISS", "TCP_REFRESH_MODIFIED", "TCP_REFRESH_UNMODIFIED", "TCP_REFRESH_FAIL_OLD",
                         "TCP_REFRESH_FAIL_ERR", "TCP_CLIENT_REFRESH_MISS"})


def origin_asks(events: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """cache node -> requests it sent on towards an origin: a gateway's routed requests, a forward proxy's
    forwarded ones (halab's name the server; Squid's say it with the result code). Tunnels and refusals ask nobody."""
    def asked(e: Mapping[str, Any]) -> bool:
        if e["kind"] == "request_routed":
            return True
        if e["kind"] != "proxy_request" or e.get("result") == "TCP_TUNNEL":
            return False
        return bool(e["server"]) if "server" in e else e.get("result") in SQUID_ASKED

    caches = {e["node"] for e in events if e["kind"] == "cache_result"}
    return {node: sum(1 for e in events if e["node"] == node and asked(e)) for node in caches}


def _by_node(events: Sequence[Mapping[str, Any]], kind: str, field_name: str) -> dict[str, dict[str, int]]:
    """node -> value of ``field_name`` -> how many ``kind`` events said it (refusals by reason, timeouts by kind)."""
    out: dict[str, Counter[str]] = {}
    for e in events:
        if e["kind"] == kind:
            out.setdefault(e["node"], Counter())[e.get(field_name) or "?"] += 1
    return {node: dict(c.most_common()) for node, c in sorted(out.items())}


MANY_KEYS = 10  # distinct paths from which a run counts as a hashing lesson


def _key_moves(requests: Sequence[Mapping[str, Any]], faults: Sequence[FaultOutcome], start: float,
               end: float) -> tuple[tuple[str, KeyMoves], ...]:
    """For each detected fault: which keys changed server between before it and after its detection."""
    if len({r.get("path") for r in requests}) < MANY_KEYS:
        return ()
    out = []
    for f in faults:
        if f.detected_at is None:
            continue
        after_end = f.reverted_at if f.reverted_at is not None else end + 1
        out.append((f"{f.action} {f.target}", key_moves(requests, (start, f.at), (f.detected_at, after_end), f.target)))
    return tuple(out)


def _slots(requests: Sequence[Mapping[str, Any]], start: float, bucket: float) -> list[Slot]:
    grouped: dict[int, list[Mapping[str, Any]]] = {}
    for r in requests:
        grouped.setdefault(int((r["t"] - start) // bucket), []).append(r)
    slots = []
    for index in sorted(grouped):
        rs = grouped[index]
        lat = sorted(r["latency"] for r in rs if r["ok"])
        slots.append(Slot(start + index * bucket, len(rs), sum(1 for r in rs if r["ok"]), percentile(lat, 50), percentile(lat, 99)))
    return slots


def _time_availability(requests: Sequence[Mapping[str, Any]], start: float, settings: Settings) -> float:
    slots = _slots(requests, start, settings.bucket)
    if not slots:
        return 1.0
    good = sum(1 for s in slots if s.ok >= settings.good_ratio * s.total)
    return good / len(slots)


def _outages(failures: Sequence[Mapping[str, Any]], requests: Sequence[Mapping[str, Any]],
             periods: Sequence[tuple[Mapping[str, Any], float | None]], gap: float) -> list[Outage]:
    clusters: list[list[Mapping[str, Any]]] = []
    for r in failures:  # already in time order
        if clusters and r["t"] - clusters[-1][-1]["t"] <= gap:
            clusters[-1].append(r)
        else:
            clusters.append([r])
    outages = []
    for cluster in clusters:
        start, end = cluster[0]["t"], cluster[-1]["t"]
        total = sum(1 for r in requests if start <= r["t"] <= end)
        resent = sum(1 for r in requests if r["ok"] and r.get("resent") and start - gap <= r["t"] <= end + gap)
        in_flight_until = max(r["t"] + r["latency"] for r in cluster)  # a request due just before a fault can still meet it
        outages.append(Outage(start, end, len(cluster), total, _cause(start, in_flight_until, periods), resent))
    return outages


def _cause(start: float, end: float, periods: Sequence[tuple[Mapping[str, Any], float | None]]) -> str:
    """The fault in force when the window began (or began inside it)."""
    active = [f for f, rev in periods if f["t"] <= end and (rev is None or rev >= start - 5)]
    if not active:
        return "no fault injected (look at the events)"
    best = min(active, key=lambda f: abs(f["t"] - start))
    return f"{best['action']} {best['target']}"


def _fault_outcome(fault: Mapping[str, Any], reverted: float | None, events: Sequence[Mapping[str, Any]],
                   failures: Sequence[Mapping[str, Any]], routed: Sequence[Mapping[str, Any]],
                   down: Mapping[tuple[str, str], list[tuple[float, float]]]) -> FaultOutcome:
    affects = tuple(fault.get("affects", ()))
    t0 = fault["t"]
    until = reverted if reverted is not None else math.inf
    balancers = sorted({e["node"] for e in events if e["kind"] in ("health_changed", "health_checked", "request_routed")})
    per: dict[str, dict[str, float | int | None]] = {}
    for node in balancers:
        spans = [(a, b) for server in affects for a, b in down.get((node, server), ()) if a < until and b > t0]
        mine = [e for e in routed if e["node"] == node and e["server"] in affects and t0 <= e["t"] < until]
        if not spans and not mine:
            continue  # this balancer neither saw the server fail nor sent it anything: it has no view to judge
        detected = min((max(a, t0) for a, b in spans), default=None)
        back = None
        if reverted is not None and any(a <= reverted < b for a, b in spans):  # DOWN at the repair: when did it come back?
            back = next((e["t"] for e in events if e["t"] >= reverted and e["node"] == node and e["kind"] == "health_changed"
                         and e["after"] == "UP" and e["server"] in affects), None)
        elif reverted is not None and detected is not None:
            back = reverted  # UP again already when the repair came
        per[node] = {"detection": None if detected is None else detected - t0,
                     "recovery": None if back is None or reverted is None else back - reverted,
                     "routed_while_down": sum(1 for e in routed if e["node"] == node and e["server"] in affects
                                              and _inside(e["t"], down.get((node, e["server"]), ())))}
    # the row: the slowest balancer (one that never detected is the slowest of all)
    worst = max(per, key=lambda n: math.inf if per[n]["detection"] is None else per[n]["detection"], default="")
    detected_at = None if not worst or per[worst]["detection"] is None else t0 + float(per[worst]["detection"])  # type: ignore[arg-type]
    recoveries = [v["recovery"] for v in per.values() if reverted is not None and v["detection"] is not None]
    recovered_at = None
    if recoveries and all(r is not None for r in recoveries) and reverted is not None:
        recovered_at = reverted + max(float(r) for r in recoveries)  # type: ignore[arg-type]
    first_seen = {n: t0 + float(v["detection"]) for n, v in per.items() if v["detection"] is not None}  # type: ignore[arg-type]
    mine = [r for r in failures if r.get("upstream") in affects and r["t"] + r["latency"] >= t0 and (reverted is None or r["t"] < reverted)]

    def seen_by(r: Mapping[str, Any]) -> float | None:  # the detection of the balancer that answered, when the client knows it
        return first_seen.get(r.get("gateway") or "", detected_at)

    before = sum(1 for r in mine if seen_by(r) is None or r["t"] < seen_by(r))  # type: ignore[operator]
    after = len(mine) - before
    routed_down = sum(int(v["routed_while_down"] or 0) for v in per.values()) if routed else None
    return FaultOutcome(fault["action"], fault["target"], t0, affects, reverted, detected_at, recovered_at, before, after, routed_down,
                        worst if len(per) > 1 else "", per)


def check_expectations(m: Metrics, expect: Mapping[str, Any]) -> tuple[Check, ...]:
    """Turn a scenario's [expect] table into pass/fail lines an instructor can grade on."""
    checks = []
    if expect.get("availability_min") is not None:
        want = expect["availability_min"]
        checks.append(Check("availability_min", m.request_availability >= want,
                            f"request availability {m.request_availability:.4%} (want >= {want:.4%})"))
    if expect.get("max_detection") is not None:
        want = expect["max_detection"]
        worst = [f.detection for f in m.faults if f.affects]
        missing = [f"{f.action} {f.target}" for f in m.faults if f.affects and f.detection is None]
        ok = not missing and all(d is not None and d <= want for d in worst)
        seen = ", ".join(f"{d:.2f} s" for d in worst if d is not None) or "none"
        checks.append(Check("max_detection", ok, f"detection times {seen}" + (f"; never detected: {', '.join(missing)}" if missing else "") + f" (want <= {want} s)"))
    if expect.get("no_requests_after_detection"):
        routed = [f.routed_while_down for f in m.faults if f.affects]
        if any(r is None for r in routed):
            checks.append(Check("no_requests_after_detection", False, "the balancer did not log routing (log_requests = false)"))
        else:
            total = sum(r or 0 for r in routed) + sum(f.failed_after_detection for f in m.faults)
            checks.append(Check("no_requests_after_detection", total == 0, f"{total} requests sent to servers already marked DOWN"))
    if expect.get("reconverge_within") is not None:
        want = expect["reconverge_within"]
        judged = [r for r in m.recoveries if not r.cut_short]
        slow = [f"{r.repair}: " + ("never" if r.took is None else f"{r.took:.2f} s") for r in judged if r.took is None or r.took > want]
        seen = ", ".join("never" if r.took is None else f"{r.took:.2f} s" for r in judged) or "no complete repair"
        checks.append(Check("reconverge_within", bool(judged) and not slow,
                            f"back to a steady state after each repair: {seen} (want <= {want} s)" + (f"; too slow: {'; '.join(slow)}" if slow else "")))
    if expect.get("one_master_per_vip"):
        bad = [r.repair for r in m.recoveries if r.has_vrrp and r.vip is None and r.window == math.inf]
        after = [f"{vip} {a - m.load_start:.2f}-{b - m.load_start:.2f} s" for vip, a, b in m.split_brain
                 if any(a >= r.at for r in m.recoveries)]
        checks.append(Check("one_master_per_vip", not bad and not after and any(r.has_vrrp for r in m.recoveries),
                            "exactly one MASTER per VIP after every repair" if not bad and not after else
                            f"not one MASTER after: {', '.join(bad) or '—'}; two MASTERs after a repair: {', '.join(after) or '—'}"))
    if expect.get("max_outage") is not None:
        want = expect["max_outage"]
        longest = max((o.duration for o in m.outages), default=0.0)
        checks.append(Check("max_outage", longest <= want, f"longest outage window {longest:.2f} s (want <= {want} s)"))
    served = sum(m.served_by.values())
    for origin, want in sorted((expect.get("max_share") or {}).items()):
        share = m.served_by.get(origin, 0) / served if served else 0.0
        checks.append(Check(f"max_share {origin}", served > 0 and share <= want,
                            f"{origin} served {share:.1%} of {served} successful requests (want <= {want:.1%})"))
    return tuple(checks)
