"""Running a real daemon (HAProxy, nginx, keepalived) as a child of a halab service.

``supervise`` is the life every wrapper shares: write the daemon's config,
start it, turn each line it says into events, tell the lab it is ready, and
when it exits by itself say so and fail the service (the lab must see a
dead HAProxy as loudly as a dead halab balancer). A wrapper supplies only
the command, the line translator and what "ready" means.

The child gets PR_SET_PDEATHSIG=SIGKILL, so a ``crash`` fault that kills the
wrapper takes the daemon down too, as it would a real machine; its stderr
and stdout come back line by line through a real pipe (nginx opens
/dev/stderr for its access log, and open() fails with ENXIO on the socket
pair asyncio would otherwise use).
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable

if TYPE_CHECKING:
    from lab.services.runtime import Context

Process = asyncio.subprocess.Process


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def spawn(cmd: list[str], owner: tuple[int, int] | None = None) -> tuple[asyncio.subprocess.Process, asyncio.StreamReader]:
    read_end, write_end = os.pipe()
    if owner is not None:
        # a daemon that drops root and then opens /dev/stdout (Squid) needs the pipe to be its user's
        os.fchown(write_end, *owner)
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=write_end, stderr=write_end, stdin=asyncio.subprocess.DEVNULL,
                                                preexec_fn=_die_with_parent)
    os.close(write_end)
    output = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(output), os.fdopen(read_end, "rb"))
    return proc, output


async def lines(output: asyncio.StreamReader) -> AsyncIterator[str]:
    while line := await output.readline():
        text = line.decode("utf-8", "replace").rstrip()
        if text:
            yield text


async def until_exit_or_stop(proc: asyncio.subprocess.Process, stopping: asyncio.Event) -> bool:
    """Wait for the daemon to exit (True) or the service to be told to stop (False)."""
    exited = asyncio.create_task(proc.wait())
    told = asyncio.create_task(stopping.wait())
    done, pending = await asyncio.wait({exited, told}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return exited in done


async def stop(proc: asyncio.subprocess.Process, grace: float = 3.0) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


async def supervise(ctx: "Context", name: str, cmd: list[str], conf_path: str, conf_text: str, on_line: Callable[[str], None],
                    ready: Callable[[Process], Awaitable[None]], after_stop: Callable[[], None] | None = None,
                    owner: tuple[int, int] | None = None) -> None:
    """Run one real daemon for the whole life of the service (see the module's docstring)."""
    conf = Path(conf_path)
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(conf_text)
    proc, output = await spawn(cmd, owner)

    async def pump() -> None:
        async for text in lines(output):
            on_line(text)

    reader = asyncio.create_task(pump())
    try:
        await ready(proc)
        if await until_exit_or_stop(proc, ctx.stopping):
            ctx.log.emit("daemon_exited", code=proc.returncode)
            ctx.fail("daemon", RuntimeError(f"{name} exited by itself with code {proc.returncode}"))
    finally:
        try:
            await stop(proc)
            await asyncio.wait_for(reader, 2)
        finally:  # also when the service's stop grace ran out while the daemon was still winding down
            if after_stop is not None:
                after_stop()
