"""The numbers behind the live view, updated event by event (pure)."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping

from lab.analysis.metrics import percentile

NOTABLE = {"fault_applied", "fault_reverted", "health_changed", "service_started", "service_stopped", "request_rejected",
           "vrrp_state_changed", "priority_changed", "server_ejected", "server_returned", "service_failed", "service_exited", "advert_send_failed",
           "advert_send_recovered"}
HOSTILE_SPIKE = 3  # refused requests within the window that make the live view say "hostile traffic"
QUIET_TICKS = 5.0  # seconds before another refusal of the same kind by the same node gets a ticker line


@dataclass
class ServerView:
    label: str = "UP ?"
    routed: int = 0
    served: int = 0
    failed: int = 0


@dataclass
class LiveState:
    window: float = 2.0  # seconds of recent requests behind "now" figures
    load_start: float | None = None
    sent: int = 0
    ok: int = 0
    servers: dict[str, ServerView] = field(default_factory=dict)
    recent: deque[tuple[float, bool, float]] = field(default_factory=deque)
    ticker: deque[str] = field(default_factory=lambda: deque(maxlen=8))
    vrrp: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)  # (node, vip) -> (state, since)
    gateway_rps: dict[str, float] = field(default_factory=dict)
    advert_age: dict[tuple[str, str], float | None] = field(default_factory=dict)  # seconds since each speaker heard an advert
    refused: deque[tuple[float, str]] = field(default_factory=deque)  # (time, kind) of requests a gateway refused
    refused_total: int = 0
    last_tick: dict[tuple[str, str], float] = field(default_factory=dict)  # (node, kind) -> when a refusal was last told

    def server(self, name: str) -> ServerView:
        return self.servers.setdefault(name, ServerView())

    def feed(self, e: Mapping[str, Any]) -> str | None:
        """Take one event; return a ticker line if it is worth telling."""
        kind = e["kind"]
        if kind == "load_started" and self.load_start is None:
            self.load_start = e["t"]
        elif kind == "request_finished":
            self.sent += 1
            self.ok += bool(e["ok"])
            self.recent.append((e["t"], bool(e["ok"]), e["latency"]))
            if e.get("served_by") and e["ok"]:
                self.server(e["served_by"]).served += 1
            elif e.get("upstream") and not e["ok"]:
                self.server(e["upstream"]).failed += 1
        elif kind == "request_routed":
            self.server(e["server"]).routed += 1
        elif kind in ("health_checked", "health_changed"):
            self.server(e["server"]).label = e["label"]
        elif kind == "vrrp_state_changed":
            self.vrrp[(e["node"], e.get("vip", "?"))] = (e["after"], e["t"])
        elif kind == "vrrp_heartbeat":
            self.advert_age[(e["node"], e.get("vip", "?"))] = e.get("last_advert_age")
        elif kind == "balancer_load":
            self.gateway_rps[e["node"]] = e["rps"]
        elif kind == "service_ready" and "servers" in e:
            for name in e["servers"]:
                self.server(name).label = "UP"
        elif kind == "request_rejected":
            reason = e.get("reason", "malformed")
            self.refused.append((e["t"], reason))
            self.refused_total += 1
            key = (e.get("node", "?"), reason)
            if e["t"] - self.last_tick.get(key, float("-inf")) < QUIET_TICKS:
                return None  # a flood of refusals is one line now and then, plus the hostile-traffic line
            self.last_tick[key] = e["t"]
        if kind in NOTABLE:
            line = f"{self.clock(e['t'])}  {describe(e)}"
            self.ticker.append(line)
            return line
        return None

    def clock(self, t: float) -> str:
        return f"{t - self.load_start:7.2f}s" if self.load_start is not None else "   (setup)"

    def vip_holders(self) -> dict[str, list[str]]:
        """VIP -> nodes that say they are MASTER of it (two or more: split brain)."""
        holders: dict[str, list[str]] = {}
        for (node, vip), (state, _) in sorted(self.vrrp.items()):
            holders.setdefault(vip, [])
            if state == "MASTER":
                holders[vip].append(node)
        return holders

    def now_figures(self, now: float) -> dict[str, float | None]:
        while self.recent and self.recent[0][0] < now - self.window - 5:
            self.recent.popleft()
        # Requests due in the window that have had time to finish or fail are the honest "now".
        window = [r for r in self.recent if now - self.window - 1 <= r[0] <= now]
        lat = sorted(r[2] for r in window if r[1])
        return {"requests": len(window), "success": (sum(r[1] for r in window) / len(window)) if window else None,
                "p50": percentile(lat, 50), "p99": percentile(lat, 99)}


    def hostile(self, now: float) -> dict[str, int]:
        """Refusals by kind in the recent window (smuggling, head_timeout, ...): empty unless they spike."""
        while self.refused and self.refused[0][0] < now - self.window:
            self.refused.popleft()
        if len(self.refused) < HOSTILE_SPIKE:
            return {}
        counts: dict[str, int] = {}
        for _, reason in self.refused:
            counts[reason] = counts.get(reason, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def describe(e: Mapping[str, Any]) -> str:
    kind = e["kind"]
    who = e.get("node", "?")
    if kind == "fault_applied":
        return f"FAULT  {e['action']} {e['target']}" + (f"  ({e['note']})" if e.get("note") else "")
    if kind == "fault_reverted":
        return f"REPAIR {e['action']} {e['target']}"
    if kind == "health_changed":
        return f"{who}: {e['server']} {e['before']} -> {e['after']} ({e.get('reason', '')})"
    if kind == "request_failed":
        return f"{who}: request {e.get('id')} failed on {e.get('server') or 'no server'}: {e.get('status')} {e.get('error')}"
    if kind == "health_checked":
        return f"{who}: probe of {e['server']} {e['result']}ed ({e.get('detail', '')}), now {e['label']}"
    if kind == "vrrp_state_changed":
        return f"{who}: VRRP {e['before']} -> {e['after']} for {e.get('vip')} ({e.get('reason', '')[:50]})"
    if kind == "priority_changed":
        return f"{who}: VRRP priority now {e.get('priority')} ({e.get('reason', '')})"
    if kind == "server_ejected":
        return f"{who}: {e['server']} ejected by passive check ({e.get('rule', '')})"
    if kind == "request_rejected":
        return f"{who}: refused a request from {e.get('client')}: {e.get('status')} {e.get('reason', '')}: {e.get('error', '')[:80]}"
    if kind == "service_failed":
        return f"{who}: SERVICE FAILED in {e.get('task')}: {e.get('error')}"
    if kind == "service_exited":
        return f"SERVICE FAILED: {e.get('key')} exited by itself with code {e.get('code')} ({e.get('log', '')[-80:]})"
    if kind == "advert_send_failed":
        return f"{who}: cannot send VRRP adverts ({e.get('error')}); still {e.get('state')}, timers running"
    if kind == "advert_send_recovered":
        return f"{who}: VRRP adverts go out again ({e.get('lost')} lost)"
    return f"{who}: {kind.replace('_', ' ')}"
