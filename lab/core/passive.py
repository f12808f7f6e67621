"""Passive health checks: judge servers by how real requests fare.

Active probes see a server every ``inter`` seconds; real traffic sees it on
every request. A passive check turns request failures (connection refused,
timeout, reset, or a 5xx answer) into an *ejection*: the server takes no new
requests for a while, then gets another chance. Two classic rules:

- **nginx** ``max_fails``/``fail_timeout`` (defaults 1 and 10 s): after
  ``max_fails`` failures within ``fail_timeout`` seconds the server is
  skipped for ``fail_timeout`` seconds.
- **Envoy outlier detection**: after ``consecutive_errors`` failures in a
  row (default 5) the host is ejected for ``base_ejection`` x (times it was
  ejected) seconds (default 30 s), but never more than
  ``max_ejection_percent`` of the hosts at once (default 10%, and always at
  least one), so a bad deploy cannot empty the pool.

0 turns a rule off. Time is passed in; nothing here sleeps.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from lab.core.schema import setting


@dataclass(frozen=True)
class PassiveSettings:
    max_fails: int = setting(0, "nginx max_fails (nginx default 1; 0 = off)", minimum=0)
    fail_timeout: float = setting(10.0, "nginx fail_timeout, seconds", minimum=0.01)
    consecutive_errors: int = setting(0, "Envoy consecutive_5xx (Envoy default 5; 0 = off)", minimum=0)
    base_ejection: float = setting(30.0, "Envoy base_ejection_time, seconds", minimum=0.01)
    max_ejection_percent: float = setting(10.0, "Envoy max_ejection_percent", minimum=0, maximum=100)

    @property
    def enabled(self) -> bool:
        return self.max_fails > 0 or self.consecutive_errors > 0


@dataclass(frozen=True)
class Ejection:
    server: str
    until: float
    rule: str


@dataclass
class _Record:
    recent: deque[float] = field(default_factory=deque)
    streak: int = 0
    times_ejected: int = 0
    until: float | None = None


class PassiveHealth:
    def __init__(self, settings: PassiveSettings, servers: list[str]) -> None:
        self.settings = settings
        self.records = {name: _Record() for name in servers}

    def ejected(self, name: str) -> bool:
        return self.records[name].until is not None

    def success(self, name: str, now: float) -> None:
        self.records[name].streak = 0

    def failure(self, name: str, now: float) -> Ejection | None:
        s = self.settings
        r = self.records[name]
        if r.until is not None:
            return None
        r.streak += 1
        r.recent.append(now)
        while r.recent and r.recent[0] < now - s.fail_timeout:
            r.recent.popleft()
        if s.max_fails and len(r.recent) >= s.max_fails:
            return self._eject(name, now + s.fail_timeout, f"{len(r.recent)} failures within {s.fail_timeout:g} s (max_fails {s.max_fails})")
        if s.consecutive_errors and r.streak >= s.consecutive_errors:
            ejected = sum(1 for x in self.records.values() if x.until is not None)
            if ejected and 100 * ejected / len(self.records) >= s.max_ejection_percent:
                return None
            duration = s.base_ejection * (r.times_ejected + 1)
            return self._eject(name, now + duration, f"{r.streak} consecutive errors (consecutive_errors {s.consecutive_errors})")
        return None

    def _eject(self, name: str, until: float, rule: str) -> Ejection:
        r = self.records[name]
        r.until = until
        r.times_ejected += 1
        r.recent.clear()
        r.streak = 0
        return Ejection(name, until, rule)

    def expire(self, now: float) -> list[str]:
        """Servers whose ejection is over: they may take requests again."""
        back = []
        for name, r in self.records.items():
            if r.until is not None and now >= r.until:
                r.until = None
                back.append(name)
        return back
