"""When a packet reached this host, as the kernel saw it (SO_TIMESTAMPNS), not when the process got round to reading it.

A VRRP backup's Master_Down timer restarts at every advert it hears. If it
restarts at the time the speaker *read* the advert, every wake-up delay of
the process (the event loop finishing other work, the scheduler) is added
to the takeover. The kernel stamps each packet as it arrives; the speaker
asks for that stamp with its data (an ancillary ``SCM_TIMESTAMPNS``
message), so the timer counts from the wire.

The clock is CLOCK_REALTIME, the one ``time.time()`` reads.

A stamp far older than the read means the process was behind: frozen (the
``pause`` fault) or starved, with adverts piling up in the socket buffer.
That buffer may have overflowed and lost the newest adverts, so the last
stamp read could make a live master look silent. Then the read time counts,
as it did before stamps (and as keepalived does).
"""
from __future__ import annotations

import socket
import struct

SO_TIMESTAMPNS = 35  # <asm-generic/socket.h>; Python's socket module does not name it
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
TIMESPEC = struct.Struct("=qq")  # tv_sec, tv_nsec (64-bit Linux)
ANCILLARY_SPACE = socket.CMSG_SPACE(TIMESPEC.size)


def enable(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def arrival(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The kernel's arrival time in a ``recvmsg`` answer's ancillary data; None when it carries none."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack_from(data)
            return seconds + nanoseconds / 1e9
    return None


def heard_at(stamp: float | None, read: float, stale_after: float) -> float:
    """When to count a packet as heard: its arrival, unless that is more than ``stale_after`` before it was read (see above)."""
    return stamp if stamp is not None and read - stamp <= stale_after else read
