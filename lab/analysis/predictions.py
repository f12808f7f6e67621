"""A student's predictions judged against what the network measured: the "predict, then run" half of a hand-in.

Every lesson asks students to predict before they run: what share will the
slow origin get, how long until the fault is detected, how many requests
will be lost. An answers file (TOML) holds those predictions, one table per
scenario, next to a student's code::

    [two-left]
    "share o3" = 0.10      # the share of the answered requests o3 will serve
    lost = 0
    why = "p2c sends a request to the slower of two only when it is less loaded"

Numbers are predictions; text is an answer for the instructor to read (the
grade sheet shows it, nothing scores it). An instructor's pack says which
predictions count, how close is close enough, and for how many points. The
names below are the only measures a prediction can name: each one says what
it measures, and reads it from the run's metrics, never from the scenario.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from lab.analysis.metrics import Metrics


def _share(m: Metrics, origin: str) -> float | None:
    answered = sum(m.served_by.values())
    return m.served_by.get(origin, 0) / answered if answered else None


def _slowest(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known and len(known) == len(values) else None


def _detection(m: Metrics, node: str) -> float | None:
    faults = [f for f in m.faults if not node or node in f.affects or f.target == node]
    return _slowest([f.detection for f in faults]) if faults else None


def _failover(m: Metrics, _: str) -> float | None:
    return _slowest([f.took for f in m.failovers]) if m.failovers else None


def _reconverge(m: Metrics, _: str) -> float | None:
    return _slowest([r.took for r in m.recoveries]) if m.recoveries else None


# name -> (what it measures, how it is read); "share o3" is the measure "share" of o3
MEASURES: dict[str, tuple[str, Callable[[Metrics, str], float | None]]] = {
    "availability": ("the share of requests answered (0..1)", lambda m, _: m.request_availability),
    "lost": ("how many requests failed", lambda m, _: float(m.failed)),
    "share": ("the share of the answered requests one origin served (0..1): 'share o3'", _share),
    "detection": ("seconds from a fault to its detection (health DOWN), the slowest; 'detection o2': o2's fault", _detection),
    "failover": ("seconds from a fault to a new VRRP MASTER, the slowest", _failover),
    "outage": ("the longest outage window, in seconds (0: none)", lambda m, _: max((o.duration for o in m.outages), default=0.0)),
    "reconverge": ("seconds from a repair to a steady lab again, the slowest", _reconverge),
}
NEEDS_ARGUMENT = {"share"}


@dataclass(frozen=True)
class Prediction:
    """One prediction an instructor scores: its name ('share o3'), the tolerance either side and the points."""

    name: str
    within: float
    points: int = 1

    @property
    def measure(self) -> str:
        return self.name.split()[0]

    @property
    def argument(self) -> str:
        return self.name.split(maxsplit=1)[1] if " " in self.name else ""


def parse_prediction(name: str, spec: Any, where: str) -> Prediction:
    """``"share o3" = { within = 0.05, points = 2 }`` from a pack, checked: every mistake names where it is."""
    measure = name.split()[0] if name.split() else ""
    if measure not in MEASURES:
        raise ValueError(f"{where}: predict {name!r}: no such measure; known: {', '.join(MEASURES)}")
    if measure in NEEDS_ARGUMENT and " " not in name.strip():
        raise ValueError(f"{where}: predict {name!r}: say which one, e.g. \"{measure} o3\"")
    if not isinstance(spec, Mapping) or set(spec) - {"within", "points"} or "within" not in spec:
        raise ValueError(f"{where}: predict {name!r}: expected {{ within = TOLERANCE, points = N }}")
    within, points = spec["within"], spec.get("points", 1)
    if isinstance(within, bool) or not isinstance(within, (int, float)) or within < 0:
        raise ValueError(f"{where}: predict {name!r}: within is a tolerance, a number of 0 or more")
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        raise ValueError(f"{where}: predict {name!r}: whole numbers of points")
    return Prediction(" ".join(name.split()), float(within), points)


def measured(m: Metrics, p: Prediction) -> float | None:
    return MEASURES[p.measure][1](m, p.argument)


def judge(p: Prediction, predicted: Any, value: float | None) -> tuple[bool, str]:
    """Whether a predicted number is within the tolerance of the measured one, and the sheet's text for it."""
    if predicted is None:
        return False, f"no prediction for {p.name!r}"
    if isinstance(predicted, bool) or not isinstance(predicted, (int, float)):
        return False, f"the prediction for {p.name!r} is not a number: {predicted!r}"
    if value is None:
        return False, f"predicted {predicted:g}; the run measured no {p.name} (nothing of it happened)"
    close = abs(predicted - value) <= p.within + 1e-9
    return close, f"predicted {predicted:g}, measured {value:.3g} (within ±{p.within:g}: {'yes' if close else 'no'})"


def answers_of(text: str, where: str) -> dict[str, dict[str, Any]]:
    """An answers file: scenario -> {name: number or text}; a mistake raises ValueError naming the file."""
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{where}: not valid TOML: {e}") from None
    bad = [k for k, v in data.items() if not isinstance(v, dict)]
    if bad:
        raise ValueError(f"{where}: answers go in one table per scenario, e.g. [two-left]; {', '.join(bad)} is not a table")
    return {scenario: {" ".join(k.split()): v for k, v in table.items()} for scenario, table in data.items()}


def texts(answers: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(scenario, name, text) of every written answer: what the instructor reads."""
    return [(s, k, v) for s, table in answers.items() for k, v in table.items() if isinstance(v, str)]
