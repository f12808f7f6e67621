"""What every service shares: config, event log, control socket, clean exit.

``serve(main)`` runs ``main(ctx)`` on asyncio (uvloop when installed),
turns SIGTERM/SIGINT into a clean shutdown that emits ``service_stopped``,
and serves JSON commands on the service's Unix socket. Path-based Unix
sockets live in the shared filesystem, so the lab (in the root namespace)
can reach a service inside any host's network namespace.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from lab.events import EventLog

Command = Callable[[dict[str, Any]], Any]
STOP_GRACE = 1.0  # seconds a service may take to wind down after SIGTERM


@dataclass
class Context:
    config: dict[str, Any]
    log: EventLog
    commands: dict[str, Command] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def node(self) -> str:
        return self.config["node"]

    def ready(self, **fields: Any) -> None:
        """Tell the lab this process accepts traffic now (it waits for this line)."""
        self.log.emit("service_ready", pid=os.getpid(), **fields)


def install_fast_loop() -> str:
    """uvloop roughly doubles a Python proxy's throughput; use it when present."""
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


async def _control_server(ctx: Context, path: str) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    handler = ctx.commands.get(request.get("cmd", ""))
                    if handler is None:
                        reply = {"ok": False, "error": f"unknown command {request.get('cmd')!r}; known: {', '.join(sorted(ctx.commands))}"}
                    else:
                        result = handler(request)
                        if asyncio.iscoroutine(result):
                            result = await result
                        reply = {"ok": True, "result": result}
                except (ValueError, KeyError, TypeError) as e:
                    reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    if os.path.exists(path):
        os.unlink(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return await asyncio.start_unix_server(handle, path)


async def _run(main: Callable[[Context], Awaitable[None]], ctx: Context, loop_name: str) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ctx.stopping.set)
    ctx.commands.setdefault("ping", lambda req: "pong")
    control = None
    if ctx.config.get("control"):
        control = await _control_server(ctx, ctx.config["control"])
    ctx.log.emit("service_started", pid=os.getpid(), loop=loop_name)
    task = asyncio.create_task(main(ctx))
    stop = asyncio.create_task(ctx.stopping.wait())
    done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    if task not in done:
        # A service that watches ``stopping`` gets to finish its goodbye (a VRRP
        # master's priority-0 advert and VIP removal) before it is cancelled.
        done, _ = await asyncio.wait({task}, timeout=STOP_GRACE)
    if task not in done:
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    stop.cancel()
    if control is not None:
        control.close()
    ctx.log.emit("service_stopped", pid=os.getpid())


def serve(main: Callable[[Context], Awaitable[None]], argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True, help="JSON file written by the lab")
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as f:
        config = json.load(f)
    loop_name = install_fast_loop() if config.get("fast_loop", True) else "asyncio"
    log = EventLog(config["events"], config["node"], config["service"])
    ctx = Context(config, log)
    try:
        asyncio.run(_run(main, ctx, loop_name))
    finally:
        log.close()
    sys.exit(0)


def call(path: str, cmd: str, timeout: float = 2.0, **args: Any) -> Any:
    """Send one command to a service's control socket (blocking; used by the lab and CLI)."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    reply = json.loads(data)
    if not reply.get("ok"):
        raise RuntimeError(reply.get("error", "command failed"))
    return reply["result"]
