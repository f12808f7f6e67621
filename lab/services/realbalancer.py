"""HAProxy or nginx as the lab's balancer, speaking halab's event log.

The real daemon runs as a child of this process (inside the balancer's
host), configured from the same scenario settings as halab's own balancer
(``lab.net.render``). This wrapper reads the daemon's stderr and turns what
it says into halab events, so the live view, the report and the tests read
HAProxy, nginx and halab the same way:

- HAProxy ``Server origins/o1 is DOWN, reason: Layer4 timeout`` -> ``health_changed``
- a ``ROUTED <time> <request id> <server> <status>`` access line -> ``request_routed``
  (and ``request_failed`` for a 5xx or when no server was available)
- nginx ``upstream server temporarily disabled`` -> ``server_ejected``

The daemon is started by ``lab.services.daemon`` (it dies with this wrapper).

Config keys: node, impl ('haproxy' or 'nginx'), conf_text, conf_path, port,
servers, events, control.
"""
from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path
from typing import Any

from lab.services import daemon
from lab.services.runtime import Context, serve

HAPROXY_STATE = re.compile(r"Server \S+/(\S+) is (UP|DOWN)(?:, reason: ([^,]+))?")
# option log-health-checks: "Health check for server origins/o1 failed, reason: Layer4 timeout, ..., status: 2/3 UP."
HAPROXY_CHECK = re.compile(r"Health check for server \S+/(\S+) (succeeded|failed), reason: ([^,]+).*status: (\d+)/(\d+) (UP|DOWN)")
ROUTED = re.compile(r"ROUTED (\S+) (?:(\S+) )?(\S+) (\S+) (\d{3})$")
NGINX_DISABLED = re.compile(r"upstream server temporarily disabled.*upstream: \"http://([\d.]+:\d+)")


def command(impl: str, conf: str) -> list[str]:
    if impl == "haproxy":
        return ["haproxy", "-db", "-f", conf]
    if impl == "nginx":
        return ["nginx", "-c", conf, "-g", "daemon off;"]
    raise ValueError(f"unknown balancer implementation {impl!r}; expected halab, haproxy or nginx")


def parse_line(impl: str, line: str, names: dict[str, str]) -> tuple[str, dict[str, Any]] | None:
    """One stderr line of the daemon -> (event kind, fields), or None if it is not news."""
    m = HAPROXY_CHECK.search(line)
    if impl == "haproxy" and m:
        server, result, reason, n, of, state = m.groups()
        # HAProxy's own notation is the one halab shows: UP n/fall, DOWN n/rise
        return "health_checked", {"server": server, "result": "pass" if result == "succeeded" else "fail",
                                  "detail": reason.strip(), "label": f"{state} {n}/{of}"}
    m = HAPROXY_STATE.search(line)
    if impl == "haproxy" and m:
        after = m.group(2)
        return "health_changed", {"server": m.group(1), "before": "DOWN" if after == "UP" else "UP", "after": after,
                                  "reason": (m.group(3) or "").strip(), "label": after}
    m = ROUTED.search(line.strip())
    if m:
        stamp, duration, rid, server, status = m.groups()
        t = float(stamp) - (float(duration) if impl == "nginx" and duration not in (None, "-") else 0.0)
        server = names.get(server.split(",")[-1].strip(), server)
        if server in ("<NOSRV>", "-"):
            return "request_failed", {"t": t, "id": rid, "server": None, "status": int(status), "error": "no_server"}
        if int(status) >= 500:
            return "request_failed", {"t": t, "id": rid, "server": server, "status": int(status), "error": f"http_{status}"}
        return "request_routed", {"t": t, "id": rid, "server": server}
    m = NGINX_DISABLED.search(line)
    if m:
        return "server_ejected", {"server": names.get(m.group(1), m.group(1)), "rule": "nginx max_fails"}
    return None


async def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def main(ctx: Context) -> None:
    cfg = ctx.config
    impl = cfg["impl"]
    conf = Path(cfg["conf_path"])
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(cfg["conf_text"])
    names = {f"{s['address']}:{s['port']}": s["name"] for s in cfg["servers"]}
    proc, output = await daemon.spawn(command(impl, str(conf)))
    ctx.commands["stats"] = lambda req: {"impl": impl, "pid": proc.pid, "running": proc.returncode is None}

    last_check: dict[str, dict[str, Any]] = {}

    async def pump() -> None:
        async for text in daemon.lines(output):
            parsed = parse_line(impl, text, names)
            if parsed is not None:
                kind, fields = parsed
                if kind == "health_checked":
                    last_check[fields["server"]] = fields
                elif kind == "health_changed" and fields["server"] in last_check:
                    # "Server origins/o1 is DOWN." follows the check line that caused it
                    check = last_check[fields["server"]]
                    fields.update(reason=fields["reason"] or check["detail"], label=check["label"])
                ctx.log.emit(kind, **fields)
            elif "ROUTED" not in text:
                ctx.log.emit("daemon_said", line=text[:300])

    reader = asyncio.create_task(pump())
    try:
        await wait_listening(int(cfg.get("port", 80)))
        ctx.ready(port=int(cfg.get("port", 80)), servers=[s["name"] for s in cfg["servers"]], algorithm=impl, impl=impl, daemon_pid=proc.pid)
        if await daemon.until_exit_or_stop(proc, ctx.stopping):
            ctx.log.emit("daemon_exited", code=proc.returncode)
    finally:
        await daemon.stop(proc)
        await asyncio.wait_for(reader, 2)


if __name__ == "__main__":
    serve(main)
