"""Availability arithmetic: the nines, downtime budgets, series and parallel.

Availability is the fraction of time (or of requests) a service works:

    A = uptime / (uptime + downtime) = MTBF / (MTBF + MTTR)

"Nines" count the leading 9s: 0.999 is three nines. Each extra nine divides
the allowed downtime by ten. Components in *series* (all must work) multiply
their availabilities, so a chain is weaker than its weakest link; components
in *parallel* (any one suffices) fail only when all fail together:

    series:   A = A1 * A2 * ... * An
    parallel: A = 1 - (1 - A1) * (1 - A2) * ... * (1 - An)

Years here are 365.25 days and months a twelfth of that, the convention of
the usual uptime tables (99.9% -> 8.77 h a year, 43.8 min a month).
"""
from __future__ import annotations

import math
from typing import Iterable

YEAR_SECONDS = 365.25 * 24 * 3600
MONTH_SECONDS = YEAR_SECONDS / 12


def availability(up: float, down: float) -> float:
    """Fraction of time up. ``up`` and ``down`` in the same unit, not both 0."""
    if up < 0 or down < 0:
        raise ValueError(f"durations must be >= 0 (up={up}, down={down})")
    if up + down == 0:
        raise ValueError("availability of an empty period is undefined")
    return up / (up + down)


def from_mtbf(mtbf: float, mttr: float) -> float:
    """A = MTBF / (MTBF + MTTR)."""
    return availability(mtbf, mttr)


def nines(a: float) -> float:
    """Number of nines: -log10(1 - A). 0.999 -> 3.0; 1.0 -> inf."""
    if not 0 <= a <= 1:
        raise ValueError(f"availability must be in [0, 1] (got {a})")
    if a == 1:
        return math.inf
    return -math.log10(1 - a)


def format_nines(a: float) -> str:
    n = nines(a)
    return "∞ (no failure seen)" if math.isinf(n) else f"{n:.2f}"


def format_percent(a: float) -> str:
    """Enough digits to show the nines: 0.99999 -> '99.999%', 0.5 -> '50.00%'."""
    if a >= 1:
        return "100%"
    digits = max(2, min(6, math.ceil(nines(a) - 1e-9) - 2))
    return f"{a * 100:.{digits}f}%"


def downtime_per_year(a: float) -> float:
    return (1 - a) * YEAR_SECONDS


def downtime_per_month(a: float) -> float:
    return (1 - a) * MONTH_SECONDS


def series(parts: Iterable[float]) -> float:
    """Every part must work: multiply."""
    return math.prod(parts)


def parallel(parts: Iterable[float]) -> float:
    """Any one part suffices: fails only when all fail."""
    return 1 - math.prod(1 - a for a in parts)


def format_duration(seconds: float) -> str:
    """Human duration: '8.77 h', '52.6 min', '26.3 s', '3.65 d'."""
    if seconds >= 86400:
        return f"{seconds / 86400:.3g} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    return f"{seconds * 1000:.3g} ms"


def nines_table(levels: Iterable[float] = (0.99, 0.999, 0.9999, 0.99999)) -> list[tuple[str, str, str, str]]:
    """(availability, nines, downtime per year, per month) rows for the classic table."""
    return [(format_percent(a), format_nines(a), format_duration(downtime_per_year(a)), format_duration(downtime_per_month(a)))
            for a in levels]
