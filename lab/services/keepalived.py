"""keepalived as the lab's VRRP speaker, speaking halab's event log.

keepalived runs (VRRP subsystem only, in the foreground, logging to the
console) as a child of this wrapper with a config rendered from the same
settings as halab's speaker (``lab.net.render.keepalived_config``). Its log
lines become the same events halab's speaker writes, so the report and the
tests compare the two directly:

    (VI_51) Entering MASTER STATE                   -> vrrp_state_changed
    (VI_51) Changing effective priority from 150 to 90 -> priority_changed

Config keys: node, conf_text, conf_path, vip, vrid, priority,
advert_interval, events, control.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lab.core.vrrp import master_down_interval
from lab.services import daemon
from lab.services.runtime import Context, serve

STATE = re.compile(r"\(VI_(\d+)\) Entering (MASTER|BACKUP|FAULT) STATE")
PRIORITY = re.compile(r"\(VI_(\d+)\) Changing effective priority from (\d+) to (\d+)")


def parse_line(line: str) -> tuple[str, dict[str, Any]] | None:
    m = STATE.search(line)
    if m:
        return "vrrp_state_changed", {"vrid": int(m.group(1)), "after": m.group(2), "reason": line.split(") ", 1)[-1][:120]}
    m = PRIORITY.search(line)
    if m:
        return "priority_changed", {"vrid": int(m.group(1)), "priority": int(m.group(3)), "reason": "keepalived track_script"}
    return None


async def main(ctx: Context) -> None:
    cfg = ctx.config
    stem = Path(cfg["conf_path"]).with_suffix("")
    for pidfile in (Path(f"{stem}.pid"), Path(f"{stem}-vrrp.pid")):
        # Left by a killed predecessor (poweroff); keepalived refuses to start while the
        # pid in it exists, and a zombie nobody reaped counts as existing.
        pidfile.unlink(missing_ok=True)
    cmd = ["keepalived", "--dont-fork", "--log-console", "--log-detail", "--vrrp", "--no-syslog", "-f", cfg["conf_path"],
           "-p", f"{stem}.pid", "-r", f"{stem}-vrrp.pid"]
    state = {"value": "INIT"}

    def on_line(text: str) -> None:
        parsed = parse_line(text)
        if parsed is None:
            ctx.log.emit("daemon_said", line=text[:300])
            return
        kind, fields = parsed
        if kind == "vrrp_state_changed":
            fields.update(before=state["value"], vip=cfg["vip"])
            state["value"] = fields["after"]
            if fields["after"] == "MASTER":
                ctx.log.emit("vip_taken", vip=cfg["vip"], reason="keepalived")
        ctx.log.emit(kind, **fields)

    async def ready(proc: daemon.Process) -> None:
        ctx.commands["stats"] = lambda req: {"impl": "keepalived", "pid": proc.pid, "state": state["value"]}
        ctx.ready(vip=cfg["vip"], priority=cfg["priority"], impl="keepalived", daemon_pid=proc.pid,
                  master_down_interval=round(master_down_interval(int(cfg["priority"]), float(cfg["advert_interval"])), 4))

    def after_stop() -> None:
        if state["value"] != "INIT":  # keepalived says nothing as it exits; the VIP went with it
            ctx.log.emit("vrrp_state_changed", vrid=int(cfg["vrid"]), before=state["value"], after="INIT", reason="keepalived stopped",
                         vip=cfg["vip"])

    await daemon.supervise(ctx, "keepalived", cmd, cfg["conf_path"], cfg["conf_text"], on_line, ready, after_stop)


if __name__ == "__main__":
    serve(main)
