"""What the forging scripts of lab/packets share: their frames, sent on one interface again and again until stopped.

Bounded on purpose: SIGTERM (the fault's repair) ends the loop at once, and
a forgotten attack ends by itself after ``MAX_DURATION`` seconds. The
frames go out on the lab's own interface only, as built (Scapy's layer-2
socket: no routing, no ARP of its own).
"""
from __future__ import annotations

import signal
import time
from typing import Sequence

MAX_DURATION = 600.0  # seconds: a forgotten attack ends by itself


def repeat(iface: str, frames: Sequence[object], interval: float, duration: float = MAX_DURATION) -> int:
    """Send every frame, sleep ``interval``, again, until SIGTERM or ``duration``; return how many frames went out."""
    from scapy.all import conf

    sock = conf.L2socket(iface=iface)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    end = time.monotonic() + min(duration, MAX_DURATION)
    sent = 0
    try:
        while not stop["now"] and time.monotonic() < end:
            for frame in frames:
                sock.send(frame)
                sent += 1
            time.sleep(interval)
    finally:
        sock.close()
    return sent
