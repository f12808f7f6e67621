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
from datetime import datetime
from typing import Any

from lab.services import daemon
from lab.services.runtime import Context, serve, set_syncookies

HAPROXY_STATE = re.compile(r"Server \S+/(\S+) is (UP|DOWN)(?:, reason: ([^,]+))?")
# option log-health-checks: "Health check for server origins/o1 failed, reason: Layer4 timeout, ..., status: 2/3 UP."
HAPROXY_CHECK = re.compile(r"Health check for server \S+/(\S+) (succeeded|failed), reason: ([^,]+).*status: (\d+)/(\d+) (UP|DOWN)")
# nginx: ROUTED $msec $request_time id server status   (start = end - request_time)
ROUTED = re.compile(r"ROUTED (\S+) (\S+) (\S+) (\S+) (\d{3})$")
# nginx with proxy_cache: the same line ending in $upstream_cache_status
NGINX_CACHED = re.compile(r"ROUTED (\S+) (\S+) (\S+) (\S*) (\d{3}) (MISS|BYPASS|EXPIRED|STALE|UPDATING|REVALIDATED|HIT|-)$")
# nginx's cache statuses in Squid's words, and as X-Cache says them
NGINX_CACHE = {"HIT": ("HIT", "TCP_HIT"), "MISS": ("MISS", "TCP_MISS"), "BYPASS": ("BYPASS", "TCP_MISS"),
               "EXPIRED": ("MISS", "TCP_REFRESH_MODIFIED"), "REVALIDATED": ("REVALIDATED", "TCP_REFRESH_UNMODIFIED"),
               "STALE": ("STALE", "TCP_REFRESH_FAIL_OLD"), "UPDATING": ("UPDATING", "TCP_STALE_HIT")}
# HAProxy: ROUTED %Ts.%ms %Th %Ti %TR %Tw id server status. %Ts is the accept date (for a
# kept-alive connection, when it started waiting); adding the handshake, idle, receive and
# queue timers gives the moment the request was dispatched to a server.
HAPROXY_ROUTED = re.compile(r"ROUTED (\S+) (-?\d+) (-?\d+) (-?\d+) (-?\d+) (\S+) (\S+) (\d{3})$")
# HAProxy mode tcp (lab.net.render.haproxy_tcp_config): CONN %Ts.%ms client server %Tw %Tc, when the connection is made
HAPROXY_CONN = re.compile(r"CONN (\S+) (\S+) (\S+) (-?\d+) (-?\d+)$")
NGINX_DISABLED = re.compile(r"upstream server temporarily disabled.*upstream: \"http://([\d.]+:\d+)")


def command(impl: str, conf: str) -> list[str]:
    if impl == "haproxy":
        return ["haproxy", "-db", "-f", conf]
    if impl == "nginx":
        return ["nginx", "-c", conf, "-g", "daemon off;"]
    raise ValueError(f"unknown balancer implementation {impl!r}; expected halab, haproxy or nginx")


SYSLOG = re.compile(r"<\d+>1 (\S+) \S+ \S+ \S+ \S+ \S+ (.*)$")  # RFC 5424: <pri>1 time host app pid msgid sd msg


def cache_line(line: str) -> tuple[str, dict[str, Any]] | None:
    """nginx with proxy_cache: what its cache did with the request of this log line, as a cache_result event.

    A hit never reached an origin (no upstream in the line): the cache_result says so, and no
    request_routed (or request_failed) is made of it.
    """
    m = NGINX_CACHED.search(line.strip())
    if m is None or m.group(6) == "-":
        return None
    stamp, duration, rid, _, status, cached = m.groups()
    label, squid = NGINX_CACHE[cached]
    return "cache_result", {"t": float(stamp) - (float(duration) if duration != "-" else 0.0), "id": None if rid == "-" else rid,
                            "key": "-", "result": label, "squid": squid, "status": int(status), "age": None, "why": f"nginx {cached}"}


def parse_line(impl: str, line: str, names: dict[str, str]) -> tuple[str, dict[str, Any]] | None:
    """One stderr line of the daemon -> (event kind, fields), or None if it is not news.

    HAProxy logs in RFC 5424 format, whose timestamps carry microseconds:
    the health change is stamped when HAProxy made it, not when this wrapper
    got round to reading the line (tens of ms later under load, enough to
    make a request routed just before an UP look routed to a DOWN server).
    Its "[WARNING] ..." stderr copies of the same messages are skipped.
    """
    stamp: dict[str, Any] = {}
    if impl == "haproxy":
        framed = SYSLOG.match(line)
        if framed is None:
            return None if HAPROXY_CHECK.search(line) or HAPROXY_STATE.search(line) else _parse_message(impl, line, names)
        stamp = {"t": datetime.fromisoformat(framed.group(1)).timestamp()}
        line = framed.group(2)
    parsed = _parse_message(impl, line, names)
    if parsed is not None and stamp and "t" not in parsed[1]:
        parsed[1].update(stamp)
    return parsed


def _parse_message(impl: str, line: str, names: dict[str, str]) -> tuple[str, dict[str, Any]] | None:
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
    m = HAPROXY_CONN.search(line.strip()) if impl == "haproxy" else None
    if m:
        stamp, client, server, queued, connect = m.groups()
        if server == "<NOSRV>" or int(connect) < 0:
            return "connection_failed", {"t": float(stamp), "client": client, "tried": [], "error": "no backend could be connected"}
        return "connection_routed", {"t": float(stamp) + (max(0, int(queued)) + int(connect)) / 1000, "client": client,
                                     "server": names.get(server, server), "attempt": 0}
    m = HAPROXY_ROUTED.search(line.strip()) if impl == "haproxy" else None
    if m:
        stamp, *timers, rid, server, status = m.groups()
        t = float(stamp) + sum(max(0, int(x)) for x in timers) / 1000
    elif (m := ROUTED.search(line.strip())) is not None:
        stamp, duration, rid, server, status = m.groups()
        t = float(stamp) - (float(duration) if duration != "-" else 0.0)
    if m:
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


async def wait_listening(address: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection((address, port), timeout=0.2).close()
            return
        except OSError:
            if time.time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def main(ctx: Context) -> None:
    cfg = ctx.config
    impl = cfg["impl"]
    port = int(cfg["port"])
    if "syncookies" in cfg:  # a balancer's setting (lab.core.scenario.BalancerSettings); [l4] has none
        set_syncookies(bool(cfg["syncookies"]))
    bind = cfg.get("bind") or ["127.0.0.1"]
    probe_at = "127.0.0.1" if "127.0.0.1" in bind else bind[0]  # where the daemon's listener can be seen from inside the node
    names = {f"{s['address']}:{s['port']}": s["name"] for s in cfg["servers"]}
    last_check: dict[str, dict[str, Any]] = {}

    def on_line(text: str) -> None:
        cached = cache_line(text) if impl == "nginx" else None
        if cached is not None:
            ctx.log.emit(cached[0], **cached[1])
            if cached[1]["squid"] in ("TCP_HIT", "TCP_STALE_HIT", "TCP_REFRESH_FAIL_OLD"):
                return  # answered from the cache: no origin was asked, nothing was routed
            text = text.strip().rsplit(" ", 1)[0]  # the routing part of the line, as nginx writes it without a cache
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
        elif "ROUTED" not in text and "CONN" not in text and not (HAPROXY_CHECK.search(text) or HAPROXY_STATE.search(text)):
            ctx.log.emit("daemon_said", line=text[:300])

    async def ready(proc: daemon.Process) -> None:
        ctx.commands["stats"] = lambda req: {"impl": impl, "pid": proc.pid, "running": proc.returncode is None}
        await wait_listening(probe_at, port)
        ctx.ready(port=port, servers=[s["name"] for s in cfg["servers"]], algorithm=impl, impl=impl, daemon_pid=proc.pid)

    await daemon.supervise(ctx, impl, command(impl, cfg["conf_path"]), cfg["conf_path"], cfg["conf_text"], on_line, ready)


if __name__ == "__main__":
    serve(main)
