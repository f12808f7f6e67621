"""Send the hostile HTTP corpus to a gateway and record what each shape got back.

``python -m lab.packets.hostile --host 10.0.0.2 --port 80 --prefix halab``
runs inside a client node (``halab hostile`` does it for you) and prints one
JSON object per shape: the status lines it was answered with, when the
first answer byte came, and when (or whether) the gateway closed the
connection. All shapes run at once, each on its own connection, so a slow
one also shows whether the others were starved. Traffic goes only to the
address given: a node of the lab.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from typing import Any

from lab.packets.hostile_corpus import SHAPES, Shape

STATUS = re.compile(rb"HTTP/1\.[0-9] ([0-9]{3})")


async def send(host: str, port: int, shape: Shape, prefix: str, wait: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    out: dict[str, Any] = {"name": shape.name, "category": shape.category, "expect": shape.expect, "statuses": [],
                           "first_byte": None, "closed": None, "error": None}
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
    except (OSError, asyncio.TimeoutError) as e:
        out["error"] = f"connect: {e}"
        return out
    data = shape.data(prefix)

    async def write() -> None:
        try:
            if shape.trickle:
                for i in range(len(data)):
                    if writer.is_closing():
                        return
                    writer.write(data[i:i + 1])
                    await asyncio.sleep(shape.trickle)
            else:
                writer.write(data)
                if shape.then:
                    await asyncio.sleep(shape.pause)
                    writer.write(shape.then)
            await writer.drain()
        except ConnectionError:
            pass  # the gateway cut us off: that is an answer too

    writing = asyncio.create_task(write())
    answer = bytearray()
    deadline = started + wait
    try:
        while True:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except asyncio.TimeoutError:
                break
            except ConnectionError as e:
                out["error"] = type(e).__name__
                out["closed"] = round(loop.time() - started, 3)
                break
            if not chunk:
                out["closed"] = round(loop.time() - started, 3)
                break
            if out["first_byte"] is None:
                out["first_byte"] = round(loop.time() - started, 3)
            answer += chunk
    finally:
        writing.cancel()
        writer.close()
    out["statuses"] = [int(m) for m in STATUS.findall(bytes(answer))]
    out["bytes"] = len(answer)
    return out


async def run_all(host: str, port: int, prefix: str, wait: float, names: list[str] | None = None) -> list[dict[str, Any]]:
    shapes = [s for s in SHAPES if not names or s.name in names]
    return list(await asyncio.gather(*(send(host, port, s, prefix, wait) for s in shapes)))


async def upload(host: str, port: int, megabytes: int, declared: int) -> dict[str, Any]:
    """Announce a ``declared``-byte body and send ``megabytes`` MiB of it as fast as the gateway takes it, then hang up.

    What a hostile client does to a gateway that buffers request bodies whole:
    its memory grows with every byte. A streaming gateway's does not.
    """
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"POST /upload HTTP/1.1\r\nHost: lab\r\nContent-Length: {declared}\r\n\r\n".encode())
    block = bytes(1 << 20)
    started = loop.time()
    sent = 0
    try:
        for _ in range(megabytes):
            writer.write(block)
            await writer.drain()
            sent += len(block)
    except ConnectionError as e:
        return {"sent": sent, "seconds": round(loop.time() - started, 3), "error": type(e).__name__}
    seconds = loop.time() - started
    writer.close()
    return {"sent": sent, "seconds": round(seconds, 3), "error": None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.packets.hostile")
    parser.add_argument("--host", required=True, help="the gateway's address (a node of the lab)")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--prefix", default="halab", help="names this run's paths: /corpus/PREFIX/SHAPE")
    parser.add_argument("--wait", type=float, default=4.0, help="seconds to wait for each shape's answer and close")
    parser.add_argument("--shape", action="append", help="only these shapes (repeatable)")
    parser.add_argument("--upload", type=int, default=0, metavar="MIB", help="instead: send this many MiB of a body declared as 10 GB")
    args = parser.parse_args(argv)
    if args.upload:
        sys.stdout.write(json.dumps(asyncio.run(upload(args.host, args.port, args.upload, 10 * 10**9))) + "\n")
        return 0
    for result in asyncio.run(run_all(args.host, args.port, args.prefix, args.wait, args.shape)):
        sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
