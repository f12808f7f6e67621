"""Varnish as the lab's gateway (``[balancer] impl = "varnish"``), speaking halab's event log.

``varnishd -F`` runs as a child of this wrapper with a VCL rendered from the
same ``[balancer]`` settings as halab's balancer (``lab.net.render_varnish``).
Varnish writes no access log of its own: what it did lives in a shared
memory log that other programs read. Two of them run beside it, and each
line they print becomes a halab event:

- ``varnishncsa`` (one line per client request, ``NCSA_FORMAT``) ->
  ``request_routed`` / ``request_failed``, and ``cache_result`` with the
  cache's verdict in Squid's words (a hit routes nothing);
- ``varnishlog -g raw -i Backend_health`` (one line per probe) ->
  ``health_checked``, and ``health_changed`` when a backend "Went sick" or
  "Went healthy".

The service is ready once varnishncsa has logged a request of the wrapper's
own: from then on no client request goes unrecorded.

Config keys: node, conf_text, conf_path, port, servers, bind, params, storage,
workdir, events, control.
"""
from __future__ import annotations

import asyncio
import re
import shutil
import socket
import time
from typing import Any

from lab.core.health import READY_PATH
from lab.net.render_varnish import NCSA_FORMAT
from lab.services import daemon
from lab.services.realbalancer import wait_listening
from lab.services.runtime import Context, serve

ROUTED = re.compile(r"ROUTED (\S+) (\S+) (\S+) (\S+) (\d{3}) (\S+)$")
# varnishlog -g raw: "0 Backend_health - boot.o1 Went sick 4---X-R- 2 3 5 0.001 0.002 HTTP/1.1 503 ..."
HEALTH = re.compile(r"Backend_health\s+-\s+(?:[\w-]+\.)?([\w-]+)\s+(Went sick|Went healthy|Back healthy|Still healthy|Still sick)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)"
                    r"(?:\s+\S+\s+\S+\s*(.*))?")
# X-Cache's word -> Squid's result code (the access log's vocabulary)
SQUID = {"HIT": "TCP_HIT", "STALE": "TCP_STALE_HIT", "MISS": "TCP_MISS", "BYPASS": "TCP_MISS"}
ATTACH_ID = "halab-varnish-attach"


def parse_ncsa(line: str) -> list[tuple[str, dict[str, Any]]]:
    """One varnishncsa line -> its events (none for the wrapper's own readiness requests)."""
    m = ROUTED.search(line.strip())
    if m is None:
        return []
    start, _, rid, upstream, status, cached = m.groups()
    if rid == ATTACH_ID:
        return []
    t = float(start)
    rid_or_none = None if rid == "-" else rid
    events: list[tuple[str, dict[str, Any]]] = []
    if cached in SQUID:
        events.append(("cache_result", {"t": t, "id": rid_or_none, "key": "-", "result": cached, "squid": SQUID[cached],
                                        "status": int(status), "age": None, "why": f"varnish {cached}"}))
        if cached in ("HIT", "STALE"):
            return events  # answered from the cache: no origin was asked
    server = None if upstream == "-" else upstream
    if server is None or int(status) >= 500:
        events.append(("request_failed", {"t": t, "id": rid_or_none, "server": server, "status": int(status),
                                          "error": "no_server" if server is None else f"http_{status}"}))
    else:
        events.append(("request_routed", {"t": t, "id": rid_or_none, "server": server}))
    return events


def parse_health(line: str) -> list[tuple[str, dict[str, Any]]]:
    """One Backend_health record -> health_checked, and health_changed when the backend changed state.

    The probe's bits say what happened: 'H' (happy) is a pass; the counts are
    good probes in the window, the threshold and the window.
    """
    m = HEALTH.search(line)
    if m is None:
        return []
    server, verdict, bits, good, threshold, window, said = m.groups()
    up = verdict.endswith("healthy")
    label = f"{'UP' if up else 'DOWN'} {good}/{window} (healthy at {threshold})"
    detail = (said or "").strip().strip('"') or bits
    events: list[tuple[str, dict[str, Any]]] = [("health_checked", {"server": server, "result": "pass" if "H" in bits else "fail",
                                                                     "detail": detail, "label": label})]
    if not verdict.startswith("Still"):
        events.append(("health_changed", {"server": server, "before": "UP" if not up else "DOWN", "after": "UP" if up else "DOWN",
                                          "reason": detail, "label": label}))
    return events


def command(cfg: dict[str, Any]) -> list[str]:
    bind = cfg.get("bind") or []
    listen = [f":{cfg['port']}"] if cfg.get("listen_all") or not bind else [f"{a}:{cfg['port']}" for a in bind]
    cmd = ["varnishd", "-F", "-j", "none", "-n", cfg["workdir"], "-f", cfg["conf_path"], "-s", cfg["storage"]]
    for address in listen:
        cmd += ["-a", address]
    for p in cfg["params"]:
        cmd += ["-p", p]
    return cmd


def _ask(address: str, port: int) -> None:
    with socket.create_connection((address, port), timeout=0.5) as s:
        s.sendall(f"GET {READY_PATH} HTTP/1.1\r\nHost: halab\r\nX-Request-Id: {ATTACH_ID}\r\nConnection: close\r\n\r\n".encode())
        s.recv(512)


async def main(ctx: Context) -> None:
    cfg = ctx.config
    port = int(cfg["port"])
    bind = cfg.get("bind") or ["127.0.0.1"]
    probe_at = "127.0.0.1" if cfg.get("listen_all") or "127.0.0.1" in bind else bind[0]
    attached = asyncio.Event()
    readers: list[daemon.Process] = []
    pumps: list[asyncio.Task[None]] = []
    shutil.rmtree(cfg["workdir"], ignore_errors=True)  # a shared memory log left by an earlier run of this node

    def emit(events: list[tuple[str, dict[str, Any]]]) -> None:
        for kind, fields in events:
            ctx.log.emit(kind, **fields)

    def on_daemon(text: str) -> None:
        ctx.log.emit("daemon_said", line=text[:300])

    def on_ncsa(text: str) -> None:
        if ATTACH_ID in text:
            attached.set()
        emit(parse_ncsa(text))

    async def follow(cmd: list[str], on_line: Any) -> None:
        proc, output = await daemon.spawn(cmd)
        readers.append(proc)

        async def pump() -> None:
            async for text in daemon.lines(output):
                on_line(text)
            await proc.wait()
            if not ctx.stopping.is_set():  # Varnish may still serve, but the lab would no longer see what it does
                ctx.log.emit("daemon_exited", code=proc.returncode)
                ctx.fail("log reader", RuntimeError(f"{cmd[0]} exited by itself with code {proc.returncode}"))
        pumps.append(asyncio.create_task(pump()))

    async def ready(proc: daemon.Process) -> None:
        ctx.commands["stats"] = lambda req: {"impl": "varnish", "pid": proc.pid, "running": proc.returncode is None}
        deadline = time.time() + 20
        await wait_listening(probe_at, port, timeout=20)  # varnishd compiles the VCL with the C compiler first
        await follow(["varnishncsa", "-n", cfg["workdir"], "-c", "-F", NCSA_FORMAT], on_ncsa)
        await follow(["varnishlog", "-n", cfg["workdir"], "-g", "raw", "-i", "Backend_health"], lambda t: emit(parse_health(t)))
        while not attached.is_set():  # a request of our own, until varnishncsa shows it: the log is being read
            _ask(probe_at, port)
            try:
                await asyncio.wait_for(attached.wait(), 0.3)
            except asyncio.TimeoutError:
                if time.time() > deadline:
                    raise RuntimeError("varnishncsa never showed a request") from None
        ctx.ready(port=port, servers=[s["name"] for s in cfg["servers"]], algorithm="varnish", impl="varnish", daemon_pid=proc.pid)

    def after_stop() -> None:
        for reader in readers:
            if reader.returncode is None:
                reader.kill()
        for pump in pumps:
            pump.cancel()

    await daemon.supervise(ctx, "varnishd", command(cfg), cfg["conf_path"], cfg["conf_text"], on_daemon, ready, after_stop)


if __name__ == "__main__":
    serve(main)
