"""Active health checking, shared: the schedule, the probes, the counters and their events.

The L7 balancer checks its origins with it; the VRRP speaker checks its own
balancer (tracking) with it; an L4 control plane checks its backends with
it. Each target gets one probe loop. A probe's result feeds the target's
``HealthCounter`` (``lab.core.health``, HAProxy's rise/fall rules), and the
next probe comes ``inter``/``fastinter``/``downinter`` after the end of this
one, as in HAProxy. A probe that meets a pulled cable (network unreachable,
no route) is a failed probe, never a dead loop.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable

from lab.core.health import FAIL, PASS, HaproxyRule, HealthCounter, HealthRule, HealthSettings, ProbeSettings, Transition
from lab.core.http1 import HttpError
from lab.events import EventLog
from lab.services.httpio import PeerClosed, within
from lab.services.probes import http_probe, icmp_probe, tcp_probe


@dataclass(frozen=True)
class Probe(ProbeSettings):
    """What one check does (``ProbeSettings``), done: HTTP GET (HAProxy httpchk), TCP connect or ICMP echo."""

    async def __call__(self, address: str, port: int) -> tuple[bool, str]:
        if self.kind == "tcp":
            return await tcp_probe(address, port)
        if self.kind == "icmp":
            return await icmp_probe(address)
        return await http_probe(address, port, self.path, self.expect_status, self.expect_body)


@dataclass(frozen=True)
class Target:
    name: str
    address: str
    port: int


def rule_of(settings: HealthSettings) -> HealthRule:
    """HAProxy's rule, or the student's class the scenario named (resolved and tried when the scenario was read)."""
    if settings.rule == "haproxy":
        return HaproxyRule()
    from lab.core.plugins import HEALTH_RULE, load

    return load(settings.rule, HEALTH_RULE)()


class HealthChecker:
    """Probes each target on its own schedule and keeps its health.

    ``on_change(name, up)`` is called on every UP/DOWN transition. With a
    ``log``, every change of a counter's label is a ``health_checked`` event
    and every transition a ``health_changed`` event (steady UP 3/3 probes are
    not news).
    """

    def __init__(self, targets: list[Target], settings: HealthSettings, probe: Probe, log: EventLog | None = None,
                 on_change: Callable[[str, bool], None] | None = None, start_up: bool = True) -> None:
        self.targets = targets
        self.settings = settings
        self.probe = probe
        self.log = log
        self.on_change = on_change
        self.rule = rule_of(settings)  # stateless (the counter is the state): one for every target
        self.counters = {t.name: HealthCounter(t.name, settings, start_up, self.rule) for t in targets}
        self.last_check: dict[str, tuple[int, str]] = {t.name: (0, "not probed yet") for t in targets}  # (count, result)

    def ready(self, name: str) -> bool:
        """UP, and confirmed so by a probe of this checker's own (not merely trusted at start)."""
        return self.counters[name].up and self.last_check[name][1].startswith("pass")

    async def check(self, target: Target) -> tuple[bool, str]:
        """One probe with its timeout; every way it can fail is a failed probe with a reason."""
        timeout = self.settings.check_timeout
        try:
            return await within(timeout, self.probe(target.address, target.port))
        except asyncio.TimeoutError:
            return False, f"no answer within {timeout:g} s"
        except ConnectionRefusedError:
            return False, "connection refused"
        except (OSError, HttpError, asyncio.IncompleteReadError, PeerClosed) as e:
            return False, f"{type(e).__name__}: {e}"

    async def check_once(self, target: Target) -> tuple[bool, str, Transition | None]:
        """Probe, feed the counter, say what changed."""
        started = time.monotonic()
        ok, detail = await self.check(target)
        counter = self.counters[target.name]
        self.last_check[target.name] = (self.last_check[target.name][0] + 1, f"{'pass' if ok else 'fail'}: {detail}")
        before = counter.label()
        transition = counter.observe(PASS if ok else FAIL, time.time(), detail)
        if self.log is not None and counter.label() != before:
            self.log.emit("health_checked", server=target.name, result=PASS if ok else FAIL, detail=detail,
                          label=counter.label(), took=round(time.monotonic() - started, 4))
        if transition is not None:
            if self.on_change is not None:  # the pool changes first: no request is routed by the old view after the event
                self.on_change(target.name, counter.up)
            if self.log is not None:
                self.log.emit("health_changed", server=target.name, before=transition.before, after=transition.after,
                              reason=transition.reason, label=counter.label())
        return ok, detail, transition

    async def loop(self, target: Target, first_delay: float = 0.0) -> None:
        await asyncio.sleep(first_delay)
        while True:
            await self.check_once(target)
            await asyncio.sleep(self.counters[target.name].next_interval())  # from the end of the probe, like HAProxy

    def first_delays(self) -> list[float]:
        """Spread the first probes over one interval, so the targets are not all probed at the same instant."""
        return [i * self.settings.inter / max(1, len(self.targets)) for i in range(len(self.targets))]
