"""Does the lab heal? After every repair that leaves nothing broken, how long until it is steady again.

Steady means: exactly one MASTER per VIP, every balancer sees every origin
UP, and no request fails. Each part is timed from the repair to the moment
it held for good (until the next fault, or the end of the load).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from lab.analysis.vrrp_analysis import HANDOVER, masters_over_time


@dataclass(frozen=True)
class Recovery:
    """How long the lab took to come back to a steady state after a repair that left nothing broken.

    Each part is seconds from the repair until it held for good (until the
    next fault or the end): ``vip`` exactly one MASTER per VIP, ``health``
    every balancer sees every origin UP, ``success`` the last failed request.
    None: it never got there. ``took`` is the slowest part.
    """

    at: float
    repair: str
    vip: float | None
    health: float | None
    success: float | None
    has_vrrp: bool
    window: float = math.inf  # seconds until the next fault (the load's end: inf); a recovery is judged within it

    @property
    def cut_short(self) -> bool:
        """The next fault came before the lab could settle: this repair cannot be judged."""
        return self.took is None and self.window < math.inf

    @property
    def took(self) -> float | None:
        parts = [self.health, self.success] + ([self.vip] if self.has_vrrp else [])
        return None if any(p is None for p in parts) else max(p for p in parts if p is not None)


REPAIR_GROUP = 0.5  # seconds: repairs this close together (a 'restore') are one repair


def settled(changes: Sequence[tuple[float, bool]], start: float, end: float, good_at_start: bool, tolerate: float = 0.0) -> float | None:
    """The time from which a condition held until ``end``, given (time, holds) changes in order; None if it did not hold at the end.

    A lapse shorter than ``tolerate`` does not count (a preempting VRRP master
    and the one it replaces overlap for one advert's flight).
    """
    since: float | None = start if good_at_start else None
    lapse: tuple[float, float | None] | None = None  # (when it broke, the 'since' it had)
    for t, good in changes:
        if t < start or t >= end:
            continue
        if good:
            if lapse is not None and t - lapse[0] <= tolerate and lapse[1] is not None:
                since = lapse[1]
            elif since is None:
                since = t
            lapse = None
        elif since is not None or lapse is None:
            lapse = (t, since) if lapse is None else lapse
            since = None
    return since


def recoveries(events: Sequence[Mapping[str, Any]], periods: Sequence[tuple[Mapping[str, Any], float | None]],
                requests: Sequence[Mapping[str, Any]], load_end: float) -> list[Recovery]:
    repairs = sorted(rev for _, rev in periods if rev is not None)
    groups: list[float] = []
    for t in repairs:
        if not groups or t - groups[-1] > REPAIR_GROUP:
            groups.append(t)
    has_vrrp = any(e["kind"] == "vrrp_state_changed" for e in events)
    # The lab's own teardown (speakers saying 'shutdown', gateways going away) is no lapse of a repair: the window
    # ends when the run did, which can be a few milliseconds before the last request's due time plus its answer
    load_end = min([load_end] + [e["t"] for e in events if e["kind"] == "run_finished"])
    servers = sorted({srv for e in events if e["kind"] == "service_ready" and "servers" in e for srv in e["servers"]})
    balancers = sorted({e["node"] for e in events if e["kind"] == "service_ready" and "servers" in e})
    out = []
    for r in groups:
        last = max(rev for _, rev in periods if rev is not None and rev - r <= REPAIR_GROUP and rev >= r)
        if any(f["t"] <= last and (rev is None or rev > last) for f, rev in periods):
            continue  # something is still broken: no steady state to reach yet
        nxt = min((f["t"] for f, _ in periods if f["t"] > last), default=load_end)  # not past the load: then the lab shuts down
        label = ", ".join(sorted({f"{e['action']} {e['target']}" for e in events if e["kind"] == "fault_reverted" and r <= e["t"] <= last}))
        # one MASTER per VIP
        owners: dict[str, set[str]] = {}
        vip_changes: list[tuple[float, bool]] = []
        good_at = None
        for t, vip, now in masters_over_time(events):
            owners[vip] = now
            ok = all(len(o) == 1 for o in owners.values())
            if t <= last:
                good_at = ok
            else:
                vip_changes.append((t, ok))
        vip = settled(vip_changes, last, nxt, bool(good_at), HANDOVER) if has_vrrp else None
        # every balancer sees every origin UP (a restarted balancer starts with all of them UP)
        state: dict[tuple[str, str], bool] = {(b, srv): True for b in balancers for srv in servers}
        health_changes: list[tuple[float, bool]] = []
        good_before = True
        for e in events:
            if e["kind"] == "health_changed":
                state[(e["node"], e["server"])] = e["after"] == "UP"
            elif e["kind"] == "service_ready" and "servers" in e:
                for srv in e["servers"]:
                    state[(e["node"], srv)] = True
            else:
                continue
            if e["t"] <= last:
                good_before = all(state.values())
            else:
                health_changes.append((e["t"], all(state.values())))
        health = settled(health_changes, last, nxt, good_before)
        next_fault = min((f["t"] for f, _ in periods if f["t"] > last), default=None)
        # A request still unanswered when the next fault struck may have failed because of that fault:
        # it is not held against this repair (a request sent a hair before a pause times out after it).
        failed_after = [q["t"] for q in requests if not q["ok"] and last <= q["t"] < nxt
                        and (next_fault is None or q["t"] + max(q.get("latency") or 0.0, 0.0) < next_fault)]
        success = max(failed_after) if failed_after else last
        out.append(Recovery(last, label, None if vip is None else vip - last, None if health is None else health - last,
                            success - last, has_vrrp, math.inf if next_fault is None else next_fault - last))
    return out
