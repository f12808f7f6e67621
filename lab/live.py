"""The live terminal view of a running lab (rich), or plain lines when not on a terminal."""
from __future__ import annotations

import time
from typing import Any

from lab.analysis.live_state import LiveState
from lab.events import Tail


class LiveView:
    def __init__(self, run_dir: Any, title: str, duration: float, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console()
        self.tail = Tail(run_dir)
        self.state = LiveState()
        self.title = title
        self.duration = duration
        self.broken: list[str] = []
        self._live: Any = None
        self._last_line = 0.0

    def __enter__(self) -> "LiveView":
        if self.console.is_terminal:
            from rich.live import Live

            self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.update()
        if self._live is not None:
            self._live.__exit__(*exc)

    def update(self, broken: list[str] | None = None) -> None:
        if broken is not None:
            self.broken = broken
        for event in self.tail.poll():
            line = self.state.feed(event)
            if line and self._live is None:
                self.console.print(line, highlight=False)
        if self._live is not None:
            self._live.update(self.render())
        elif time.time() - self._last_line >= 2 and self.state.load_start is not None:
            self._last_line = time.time()
            self.console.print(self.summary_line(), highlight=False)

    def summary_line(self) -> str:
        now = time.time()
        f = self.state.now_figures(now)
        success = "—" if f["success"] is None else f"{f['success']:.0%}"
        p50 = "—" if f["p50"] is None else f"{f['p50'] * 1000:.1f} ms"
        health = " ".join(f"{name}:{v.label}" for name, v in sorted(self.state.servers.items()))
        vips = " ".join(f"{vip}@{'+'.join(nodes) or 'nobody'}" for vip, nodes in self.state.vip_holders().items())
        return f"{self.state.clock(now)}  success(last 2s) {success}  p50 {p50}  sent {self.state.sent}  {health}  {vips}".rstrip()

    def render(self) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table

        now = time.time()
        st = self.state
        f = st.now_figures(now)
        elapsed = 0.0 if st.load_start is None else max(0.0, now - st.load_start)
        servers = Table(expand=True)
        for col in ("server", "health", "routed", "served", "failed (blamed)", "share"):
            servers.add_column(col)
        served_total = sum(v.served for v in st.servers.values()) or 1
        for name, v in sorted(st.servers.items()):
            colour = "green" if v.label.startswith("UP") and not v.label.startswith("UP 1/") else "red" if v.label.startswith("DOWN") else "yellow"
            servers.add_row(name, f"[{colour}]{v.label}[/]", str(v.routed), str(v.served), str(v.failed), f"{v.served / served_total:.0%}")
        success = "—" if f["success"] is None else f"{f['success']:.1%}"
        colour = "green" if f["success"] in (None, 1.0) else "red"
        lat = "—" if f["p50"] is None else f"p50 {f['p50'] * 1000:.1f} ms  p99 {f['p99'] * 1000:.1f} ms"
        clients = (f"clients: [{colour}]{success}[/] of the last {f['requests']} requests succeeded, {lat}   "
                   f"total {st.sent} sent, {st.sent - st.ok} failed")
        broken = "broken now: " + (", ".join(self.broken) if self.broken else "nothing")
        parts = []
        for vip, nodes in st.vip_holders().items():
            if len(nodes) > 1:
                parts.append(f"[red]{vip}: SPLIT BRAIN, {' and '.join(nodes)} are both MASTER[/]")
            else:
                parts.append(f"{vip} held by [bold]{nodes[0] if nodes else 'nobody'}[/]")
        def age(key: tuple[str, str]) -> str:
            value = st.advert_age.get(key)
            return "" if value is None else f" (advert {value * 1000:.0f} ms ago)"

        states = "  ".join(f"{node}:{state}{age((node, vip)) if state != 'MASTER' else ''}" for (node, vip), (state, _) in sorted(st.vrrp.items()))
        load = "  ".join(f"{node} {rps:.0f} req/s" for node, rps in sorted(st.gateway_rps.items()))
        vrrp_line = (f"VRRP: {'; '.join(parts)}   ({states})" if parts else "") + (f"\ngateways: {load}" if load and parts else "")
        hostile = st.hostile(now)
        if hostile:
            kinds = ", ".join(f"{kind} {n}" for kind, n in hostile.items())
            vrrp_line = (vrrp_line + "\n" if vrrp_line else "") + \
                f"[yellow]hostile traffic: {sum(hostile.values())} requests refused in the last {st.window:g} s ({kinds})[/]"
        from rich.markup import escape

        ticker = "\n".join(f"[red]{escape(line)}[/]" if "SERVICE FAILED" in line else escape(line) for line in st.ticker) or "(no events yet)"
        header = f"[bold]{self.title}[/]   t = {elapsed:5.1f} / {self.duration:g} s   {broken}"
        rows = [header, servers, clients] + ([vrrp_line] if vrrp_line else []) + [Panel(ticker, title="events", title_align="left")]
        return Panel(Group(*rows), title="halab live")
