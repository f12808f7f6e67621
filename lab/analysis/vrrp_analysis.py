"""What the event log says about VRRP: who was MASTER when, failovers, split brain, the gateways' load.

Pure functions of the events, used by ``lab.analysis.metrics`` (the report)
and ``lab.analysis.recovery`` (healing after repairs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from lab.core.faults import STOPS_SERVICES


@dataclass(frozen=True)
class Failover:
    """A VIP changed hands after a fault: how long until a new MASTER, and who."""

    fault: str
    at: float
    vip: str
    new_master: str | None
    took: float | None
    master_down_interval: float | None


def gateway_flaps(events: Sequence[Mapping[str, Any]], spans: Sequence[tuple[str, float, float]]) -> dict[str, int]:
    """During split brain, how often each client's requests moved from one gateway to the other.

    Both MASTERs answer ARP for the VIP and announce it, so a client's ARP
    entry (and the switch's MAC table) follows whoever spoke last: its
    requests land on one gateway, then the other. Counted from the
    gateways' routing events; the client is the first part of a request id.
    """
    flaps: dict[str, int] = {}
    last: dict[str, str] = {}
    for e in events:
        if e["kind"] != "request_routed" or not any(a <= e["t"] <= b for _, a, b in spans):
            continue
        client = str(e["id"]).rsplit("-", 1)[0]
        if client in last and last[client] != e["node"]:
            flaps[client] = flaps.get(client, 0) + 1
        last[client] = e["node"]
    return flaps


def gateway_load(events: Sequence[Mapping[str, Any]], periods: Sequence[tuple[Mapping[str, Any], float | None]],
                  start: float, end: float) -> dict[str, dict[str, dict[str, float]]]:
    """Mean requests/s and CPU% of each balancer before the first fault and while it is in force."""
    samples = [e for e in events if e["kind"] == "balancer_load"]
    if not samples or not periods:
        return {}
    first, reverted = periods[0]
    windows = {"before": (start + 1, first["t"]), "during": (first["t"] + 1, reverted if reverted is not None else end)}
    out: dict[str, dict[str, dict[str, float]]] = {}
    for node in sorted({e["node"] for e in samples}):
        for name, (a, b) in windows.items():
            mine = [e for e in samples if e["node"] == node and a <= e["t"] <= b]
            if mine:
                out.setdefault(node, {})[name] = {"rps": sum(e["rps"] for e in mine) / len(mine), "cpu": sum(e["cpu"] for e in mine) / len(mine)}
    return out


def masters_over_time(events: Sequence[Mapping[str, Any]]) -> Iterable[tuple[float, str, set[str]]]:
    """After each VRRP state change: (time, vip, nodes that are MASTER of it)."""
    masters: dict[str, set[str]] = {}
    for e in events:
        if e["kind"] == "vrrp_state_changed":
            owners = masters.setdefault(e["vip"], set())
            (owners.add if e["after"] == "MASTER" else owners.discard)(e["node"])
            yield e["t"], e["vip"], set(owners)
        elif e["kind"] == "fault_applied" and e["action"] in STOPS_SERVICES:
            for owners in masters.values():  # a killed speaker cannot say it stopped being MASTER
                owners.discard(e["target"])


def failovers(events: Sequence[Mapping[str, Any]], periods: Sequence[tuple[Mapping[str, Any], float | None]]) -> list[Failover]:
    """For each fault on a VIP holder: the first other node to become MASTER of that VIP, and when."""
    out = []
    ready = {e["node"]: e for e in events if e["kind"] == "service_ready" and "master_down_interval" in e}
    # Every node that is MASTER of each VIP right now, not just the last one to say so: at
    # startup a BACKUP can win a brief race, then step down when the real master preempts it.
    masters: dict[str, set[str]] = {}
    changes = [e for e in events if e["kind"] in ("vrrp_state_changed", "fault_applied")]
    for e in changes:
        if e["kind"] == "vrrp_state_changed":
            owners = masters.setdefault(e["vip"], set())
            (owners.add if e["after"] == "MASTER" else owners.discard)(e["node"])
            continue
        affects = set(e.get("affects", ()))
        for vip, owners in masters.items():
            if not owners & affects:
                continue
            after = next((x for x in events if x["kind"] == "vrrp_state_changed" and x["vip"] == vip and x["after"] == "MASTER"
                          and x["node"] not in affects and x["t"] >= e["t"]), None)
            mdi = ready[after["node"]]["master_down_interval"] if after is not None and after["node"] in ready else None
            out.append(Failover(f"{e['action']} {e['target']}", e["t"], vip, after["node"] if after else None,
                                after["t"] - e["t"] if after else None, mdi))
            if e["action"] in STOPS_SERVICES:
                owners -= affects  # a killed speaker cannot say it stopped being MASTER
    return out


HANDOVER = 0.05  # seconds; a preempting master and the one it replaces overlap for one advert's flight


def split_brain(events: Sequence[Mapping[str, Any]], end: float) -> list[tuple[str, float, float]]:
    """Spans with two MASTERs for one VIP, longer than a normal handover."""
    spans: list[tuple[str, float, float]] = []
    since: dict[str, float] = {}
    for t, vip, owners in masters_over_time(events):
        if len(owners) > 1:
            since.setdefault(vip, t)
        elif vip in since:
            spans.append((vip, since.pop(vip), t))
    spans += [(vip, t, end) for vip, t in since.items()]
    return [s for s in spans if s[2] - s[1] > HANDOVER]
