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
import errno
import json
import os
import signal
import socket
import sys
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Coroutine

from lab.events import EventLog

if TYPE_CHECKING:
    import ssl

Command = Callable[[dict[str, Any]], Any]
STOP_GRACE = 1.0  # seconds a service may take to wind down after SIGTERM
# What a pulled cable, a downed interface or a peer that went away does to a
# socket call. These are the faults halab injects: a loop that meets one
# handles it where it happens (an event, then on), it never dies of it.
TRANSIENT_ERRNOS = frozenset({
    errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENOBUFS, errno.ECONNRESET,
    errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE, errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENXIO, errno.ETIMEDOUT,
})


def transient(error: BaseException) -> bool:
    """Is this an error a fault can cause and a repair takes away (so the loop should go on)?"""
    return isinstance(error, OSError) and error.errno in TRANSIENT_ERRNOS


@dataclass
class Context:
    config: dict[str, Any]
    log: EventLog
    commands: dict[str, Command] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    failed: bool = False  # a supervised loop died: the process exits non-zero

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> "asyncio.Task[Any]":
        """Run one of the service's long-lived loops under supervision.

        A loop must never die while the process lives on (a VRRP master that
        stops advertising but still holds its VIP). If one ends with an
        exception, that is a ``service_failed`` event with the traceback, and
        the whole service stops with a non-zero exit, which the lab sees.
        """
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(self._watch)
        return task

    def _watch(self, task: "asyncio.Task[Any]") -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None and self.stopping.is_set():
            return
        self.fail(task.get_name(), error)

    def fail(self, where: str, error: BaseException | None) -> None:
        detail = "".join(traceback.format_exception(error)) if error is not None else "the loop returned"
        self.log.emit("service_failed", task=where, error=f"{type(error).__name__}: {error}" if error else "ended", traceback=detail)
        self.failed = True
        self.stopping.set()

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
    except Exception as e:  # noqa: BLE001 - whatever it was, it is reported, and the exit says so
        ctx.fail("main", e)
    stop.cancel()
    if control is not None:
        control.close()
    ctx.log.emit("service_stopped", pid=os.getpid())


IP_FREEBIND = 15  # linux/in.h: bind an address the node does not hold (yet): a VIP while BACKUP


def listening_socket(address: str, port: int) -> socket.socket:
    """A TCP socket bound to ``address`` (``0.0.0.0``: every address), ready for ``create_server(sock=...)``.

    Services listen on their node's own addresses rather than the wildcard
    (``bind`` in their config). A VRRP virtual address comes and goes with
    mastership; IP_FREEBIND lets the socket be bound to it all along, so a
    gateway that becomes MASTER serves at once (HAProxy's ``transparent``,
    keepalived users' ``net.ipv4.ip_nonlocal_bind``).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    try:
        sock.bind((address, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def listen(factory: Callable[[], asyncio.Protocol], addresses: list[str], port: int, backlog: int = 4096,
                 tls: "ssl.SSLContext | None" = None) -> list[asyncio.AbstractServer]:
    """One server per listening address (all sharing one protocol factory); ``tls``: each connection starts with a TLS handshake."""
    loop = asyncio.get_running_loop()
    return [await loop.create_server(factory, sock=listening_socket(a, port), backlog=backlog, ssl=tls) for a in addresses or ["0.0.0.0"]]


def set_syncookies(on: bool) -> None:
    """This node's net.ipv4.tcp_syncookies (per network namespace: /proc/sys/net is the calling process's namespace's)."""
    with open("/proc/sys/net/ipv4/tcp_syncookies", "w", encoding="ascii") as f:
        f.write("1" if on else "0")


def server_tls(config: dict[str, Any]) -> "ssl.SSLContext":
    """A TLS server context from the certificate the lab's CA made for this node (``lab.net.tls``)."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config["tls_cert"], config["tls_key"])
    return context


async def until_stopped(ctx: Context, servers: list[asyncio.AbstractServer]) -> None:
    """Serve until the lab says stop (SIGTERM), then close the listeners."""
    try:
        await ctx.stopping.wait()
    finally:
        for server in servers:
            server.close()


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
    sys.exit(1 if ctx.failed else 0)


def call(path: str, cmd: str, timeout: float = 2.0, **args: Any) -> Any:
    """Send one command to a service's control socket (blocking; used by the lab and CLI)."""
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
