"""TCP echo origin (RFC 862): every byte a client sends comes straight back.

The L4 lessons need an origin that is not HTTP: a transport-layer balancer
moves connections, not requests, and an echo service shows exactly that
(the bytes of one connection all come back from one server). With
``[echo] enabled = true`` every origin node runs one beside its web server,
on ``port`` (7 by default, the echo port); a ``crash`` or ``poweroff`` of
the node takes it down with the rest.

This module is also the worked example of adding a role (README, "How it
is built"): a settings dataclass, a planner and the service itself here,
plus one entry in ``lab/core/roles.py``. Nothing else in halab names it.

Config keys: node, port, bind, events, control.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lab.core.schema import as_config, from_config, setting
from lab.services.runtime import Context, listen, serve, until_stopped


@dataclass(frozen=True)
class EchoSettings:
    enabled: bool = setting(False, "run a TCP echo server (RFC 862) on every origin, for the L4 lessons")
    port: int = setting(7, "its TCP port (7: the echo port)", minimum=1, maximum=65535)


def plan(scenario: Any, addresses: Mapping[str, str], run_dir: Path) -> list[Any]:
    """One echo server per origin node, when the scenario asks for them."""
    from lab.net.roles import ServiceSpec, base_config, own_addresses

    settings: EchoSettings = scenario.roles["echo"]
    if not settings.enabled:
        return []
    specs = []
    for node in scenario.layout.by_role("origin"):
        cfg = base_config(node, "echo", run_dir)
        cfg.update(as_config(settings), bind=own_addresses(scenario, addresses, node))
        specs.append(ServiceSpec(node, "echo", cfg))
    return specs


def port(scenario: Any, node: str) -> int:
    return int(scenario.roles["echo"].port)


class Echo(asyncio.Protocol):
    """One client connection; the counters are the service's (``stats``)."""

    def __init__(self, counters: dict[str, int]) -> None:
        self.counters = counters
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.counters["connections"] += 1
        self.counters["open"] += 1

    def data_received(self, data: bytes) -> None:
        self.counters["bytes"] += len(data)
        assert self.transport is not None
        self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.counters["open"] -= 1


async def main(ctx: Context) -> None:
    settings = from_config(EchoSettings, ctx.config)
    counters = {"connections": 0, "open": 0, "bytes": 0}
    ctx.commands["stats"] = lambda req: dict(counters)
    listeners = await listen(lambda: Echo(counters), list(ctx.config["bind"]), settings.port)
    ctx.ready(port=settings.port, bind=list(ctx.config["bind"]))
    await until_stopped(ctx, listeners)


if __name__ == "__main__":
    serve(main)
