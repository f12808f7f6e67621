"""Running a real daemon (HAProxy, nginx, keepalived) as a child of a halab service.

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
from typing import AsyncIterator


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def spawn(cmd: list[str]) -> tuple[asyncio.subprocess.Process, asyncio.StreamReader]:
    read_end, write_end = os.pipe()
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
