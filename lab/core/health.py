"""Active health checking with HAProxy's health-counter semantics.

A balancer probes each backend on a timer (HTTP GET, TCP connect or ping)
and must decide, from a noisy stream of pass/fail results, whether the
backend is UP. Flapping on every lost probe would be as bad as never
noticing a dead server, so HAProxy keeps one counter per server:

    health in [0, rise + fall - 1];  the server is UP while health >= rise

- a passed probe adds 1; reaching ``rise`` marks the server UP and jumps the
  counter to the top (``rise + fall - 1``);
- a failed probe takes 1; dropping below ``rise`` marks the server DOWN and
  resets the counter to 0.

So an UP server needs ``fall`` consecutive failures to go DOWN, and a DOWN
server needs ``rise`` consecutive passes to come back; a single pass heals an
UP server that had a bad moment, and a single failure resets a recovering
one. (HAProxy ``src/check.c``: ``check_notify_success``/``check_notify_failure``.)

The next probe starts ``inter`` after the last one *finished* (so a probe
that times out delays the next by its timeout: measured on HAProxy 2.6 here,
failed checks 0.8 s apart with inter 0.5 s and timeout 0.3 s), ``fastinter``
while the counter is between the extremes (something is changing: look more
often) and ``downinter`` while fully DOWN (HAProxy ``srv_getinter``).

The transitions are a table, like h11's ``_state.py``: every (state, result)
pair is listed, and anything else is an error that names both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from lab.core.errors import IllegalTransition
from lab.core.schema import setting

UP = "UP"
DOWN = "DOWN"
PASS = "pass"
FAIL = "fail"

# HAProxy defaults (include/haproxy/defaults.h): inter 2000 ms, rise 2, fall 3.
DEFAULT_INTER = 2.0
# A gateway answers this path itself: 200 when it has at least one server it
# can use, else 503 (HAProxy monitor-uri + "monitor fail if { nbsrv lt 1 }").
# VRRP tracking asks it, so a gateway holds its VIP only while it can serve.
READY_PATH = "/halab-ready"
DEFAULT_RISE = 2
DEFAULT_FALL = 3


@dataclass(frozen=True)
class ProbeSettings:
    """What one active check does (HAProxy ``option httpchk`` / ``check`` / an ICMP echo)."""

    kind: str = setting("http", choices=("http", "tcp", "icmp"))
    path: str = setting("/health")
    expect_status: int = setting(0, "exact status to pass (0: any 2xx/3xx, HAProxy httpchk)", minimum=0, maximum=599)
    expect_body: str = setting("", "text the answer must contain (HAProxy http-check expect string)")


@dataclass(frozen=True)
class HealthSettings:
    """When checks run and how their results count (HAProxy's defaults)."""

    rise: int = setting(DEFAULT_RISE, minimum=1, maximum=100)
    fall: int = setting(DEFAULT_FALL, minimum=1, maximum=100)
    inter: float = setting(DEFAULT_INTER, "seconds between probes (HAProxy default 2 s)", minimum=0.05)
    fastinter: float | None = setting(None, "seconds between probes while a server is going DOWN (default: inter)", minimum=0.05)
    downinter: float | None = setting(None, "seconds between probes of a DOWN server (default: inter)", minimum=0.05)
    timeout: float | None = setting(None, "seconds a probe may take (default: inter; HAProxy 'timeout check')", minimum=0.01)
    rule: str = setting("haproxy", "how a probe result moves the counter: 'haproxy', or a class of your own, "
                        "'my_counter.py:MyCounter' (exercise 1)")

    def __post_init__(self) -> None:
        if self.rise < 1 or self.fall < 1:
            raise ValueError(f"rise and fall must be >= 1 (got rise={self.rise}, fall={self.fall})")
        for name in ("inter", "fastinter", "downinter", "timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 seconds (got {value})")

    @property
    def top(self) -> int:
        return self.rise + self.fall - 1

    @property
    def check_timeout(self) -> float:
        return self.timeout if self.timeout is not None else self.inter

    def worst_detection(self) -> float:
        """Longest time from a fault to DOWN for a server that was fully UP.

        The fault can land just after a probe passed, so the first failing
        probe starts up to ``inter`` later; then ``fall`` probes must fail,
        each taking up to ``timeout``, the later ones ``fastinter`` after the
        previous one finished:

            inter + fall x timeout + (fall - 1) x fastinter
        """
        fast = self.fastinter if self.fastinter is not None else self.inter
        return self.inter + self.fall * self.check_timeout + (self.fall - 1) * fast


@dataclass(frozen=True)
class Transition:
    """The server changed state; ``reason`` says which probe did it."""

    server: str
    before: str
    after: str
    at: float
    reason: str


def _pass_while_up(h: int, s: HealthSettings) -> tuple[str, int]:
    return UP, s.top


def _fail_while_up(h: int, s: HealthSettings) -> tuple[str, int]:
    return (UP, h - 1) if h > s.rise else (DOWN, 0)


def _pass_while_down(h: int, s: HealthSettings) -> tuple[str, int]:
    return (UP, s.top) if h + 1 >= s.rise else (DOWN, h + 1)


def _fail_while_down(h: int, s: HealthSettings) -> tuple[str, int]:
    return DOWN, 0


# (state, probe result) -> step(health, settings) -> (new state, new health)
TRANSITIONS: dict[tuple[str, str], Callable[[int, HealthSettings], tuple[str, int]]] = {
    (UP, PASS): _pass_while_up,
    (UP, FAIL): _fail_while_up,
    (DOWN, PASS): _pass_while_down,
    (DOWN, FAIL): _fail_while_down,
}


class HealthRule:
    """How one probe result moves a server's state and counter: the seam exercise 1's students fill.

    ``step`` gets the state (``UP``/``DOWN``), the counter (0 to
    ``settings.top``), the result (``PASS``/``FAIL``) and the settings (``rise``,
    ``fall``, ``top``), and returns the new state and counter. It keeps no
    state of its own: the counter is the state.
    """

    name = "rule"

    def step(self, state: str, health: int, result: str, settings: HealthSettings) -> tuple[str, int]:
        raise NotImplementedError


class HaproxyRule(HealthRule):
    """HAProxy's rule, the table above: the reference a student's rule is graded against."""

    name = "haproxy"

    def step(self, state: str, health: int, result: str, settings: HealthSettings) -> tuple[str, int]:
        transition = TRANSITIONS.get((state, result))
        if transition is None:
            raise IllegalTransition(f"no transition from state {state!r} on {result!r}")
        return transition(health, settings)


@dataclass
class HealthCounter:
    """One backend's health as its balancer sees it.

    HAProxy starts servers UP with ``health = rise``: trusted, but the first
    failed probe takes them DOWN (no need to wait ``fall`` probes for a
    server that never answered). ``start_up=False`` starts them DOWN 0/rise
    instead, like HAProxy's ``init-state down``.
    """

    server: str
    settings: HealthSettings = field(default_factory=HealthSettings)
    start_up: bool = True
    rule: HealthRule = field(default_factory=HaproxyRule)
    state: str = field(init=False)
    health: int = field(init=False)

    def __post_init__(self) -> None:
        self.state = UP if self.start_up else DOWN
        self.health = self.settings.rise if self.start_up else 0

    def observe(self, result: str, now: float, reason: str = "") -> Transition | None:
        """Feed one probe result; return the transition it caused, if any."""
        if (self.state, result) not in TRANSITIONS:
            raise IllegalTransition(f"health of {self.server}: no transition from state {self.state!r} on {result!r}")
        before = self.state
        state, health = self.rule.step(self.state, self.health, result, self.settings)
        if state not in (UP, DOWN) or not 0 <= health <= self.settings.top:  # a student's rule gone wrong: say which answer
            raise IllegalTransition(f"health of {self.server}: rule {self.rule.name!r} answered ({state!r}, {health}) to "
                                    f"{result!r} in {self.state} {self.health}; expected UP or DOWN and 0..{self.settings.top}")
        self.state, self.health = state, health
        if self.state != before:
            return Transition(self.server, before, self.state, now, reason or result)
        return None

    def force(self, state: str, now: float, reason: str) -> Transition | None:
        """Set a state from outside the probes (an operator, a passive check)."""
        if state not in (UP, DOWN):
            raise IllegalTransition(f"health of {self.server}: unknown state {state!r}")
        before = self.state
        self.state = state
        self.health = self.settings.top if state == UP else 0
        return Transition(self.server, before, state, now, reason) if before != state else None

    @property
    def up(self) -> bool:
        return self.state == UP

    @property
    def settled(self) -> bool:
        return self.health in (0, self.settings.top)

    def next_interval(self) -> float:
        s = self.settings
        if self.state == DOWN and self.health == 0:
            return s.downinter if s.downinter is not None else s.inter
        if not self.settled:
            return s.fastinter if s.fastinter is not None else s.inter
        return s.inter

    def label(self) -> str:
        """HAProxy's stats notation: ``UP n/fall`` (n failures from DOWN) or ``DOWN n/rise``."""
        s = self.settings
        if self.state == UP:
            return f"UP {self.health - s.rise + 1}/{s.fall}"
        return f"DOWN {self.health}/{s.rise}"


def diagram() -> str:
    """The state table as text, generated so the docs never drift from the code."""
    lines = ["state  probe  ->  result"]
    descriptions = {
        (UP, PASS): "UP, health = rise+fall-1",
        (UP, FAIL): "UP, health-1   (DOWN, health=0 when it would drop below rise)",
        (DOWN, PASS): "DOWN, health+1 (UP, health=rise+fall-1 when it reaches rise)",
        (DOWN, FAIL): "DOWN, health = 0",
    }
    for state, result in TRANSITIONS:
        lines.append(f"{state:<5}  {result:<5}  ->  {descriptions[(state, result)]}")
    return "\n".join(lines)
