"""Outlier capping (winsorising) of per-unit metric values.

Heavy tails (one customer buying 500 items) inflate the variance of a mean far more than
they move it; capping each unit's value at a threshold trades a small, known bias for a
large variance reduction (Kohavi, Tang & Xu 2020, ch. 22). The engine works on sums, so the
cap must be applied **where the sums are computed**, to each unit's value before ``Σy`` and
``Σy²`` are taken:

* in SQL (``abkit.analysis``): the per-unit value ``v`` is replaced by
  ``CASE WHEN v > upper THEN upper WHEN v < lower THEN lower ELSE v END``
  (``sqlalchemy.case``, portable to SQLite, PostgreSQL and DuckDB) inside the per-unit
  subquery, and the arm sums are taken over that expression;
* in Python: :func:`cap_values` does the same to an array.

Rules that keep the comparison fair:

1. One threshold for all arms, computed on the **pooled** arms: a per-arm percentile would
   cap a treatment that raises big spenders harder than control and bias the lift.
2. Cap per unit (the unit's total over the window), not per event.
3. A percentile threshold is the **nearest-rank** percentile of the **non-zero** per-unit
   values (zeros are units without the event, so in a zero-inflated metric they would
   otherwise decide the threshold): with the ``N`` non-zero values sorted ascending
   ``v_(1) <= … <= v_(N)``, the ``p``-th percentile is ``v_(k)`` with ``k`` the smallest rank
   such that ``100·k >= p·N`` (at least ``p`` % of the values are ``<= v_(k)``; Hyndman &
   Fan 1996, definition 1, the inverted empirical CDF). It is always one of the values, and
   it is SQL's ``percentile_disc(p / 100)``, which is how the analysis computes it in the
   database (``abkit.analysis.constructs.NearestRank``), so Python and SQL agree exactly.
   With no non-zero value there is nothing to cap: the threshold is ``None``. The same
   definition serves a lower percentile; it then raises zeros too, so prefer an absolute
   ``lower`` for zero-inflated metrics.

Readouts record the cap: pass the :class:`AppliedCap` (or :class:`Cap`) as
``compare(..., cap=...)`` and ``LiftResult.cap`` describes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from abkit.results import ResultMixin

__all__ = [
    "AppliedCap",
    "Cap",
    "cap_values",
    "nearest_rank",
    "nearest_rank_percentile",
    "resolve_cap",
]


def _check_pct(name: str, value: float | None) -> None:
    if value is not None and not (0.0 < value < 100.0):
        raise ValueError(f"{name} must be in (0, 100), got {value!r}")


@dataclass(frozen=True)
class Cap:
    """A capping rule: an absolute value and/or a percentile, on either tail.

    ``Cap(upper_percentile=99)`` winsorises the top 1%; ``Cap(upper=1000)`` caps at 1000;
    ``Cap(lower_percentile=1, upper_percentile=99)`` winsorises both tails. A value and a
    percentile on the same tail are not allowed (ambiguous).
    """

    upper: float | None = None
    upper_percentile: float | None = None
    lower: float | None = None
    lower_percentile: float | None = None

    def __post_init__(self) -> None:
        if self.upper is not None and self.upper_percentile is not None:
            raise ValueError("give upper or upper_percentile, not both")
        if self.lower is not None and self.lower_percentile is not None:
            raise ValueError("give lower or lower_percentile, not both")
        for name in ("upper", "lower"):
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"{name} must be finite, got {v!r}")
        _check_pct("upper_percentile", self.upper_percentile)
        _check_pct("lower_percentile", self.lower_percentile)
        if (
            self.upper_percentile is not None
            and self.lower_percentile is not None
            and self.lower_percentile >= self.upper_percentile
        ):
            raise ValueError("lower_percentile must be below upper_percentile")
        if self.upper is not None and self.lower is not None and self.lower > self.upper:
            raise ValueError("lower must not exceed upper")
        if all(
            getattr(self, n) is None
            for n in ("upper", "upper_percentile", "lower", "lower_percentile")
        ):
            raise ValueError("a Cap needs at least one threshold")

    @property
    def needs_data(self) -> bool:
        """True when a percentile must be computed from the pooled values."""
        return self.upper_percentile is not None or self.lower_percentile is not None

    def describe(self) -> str:
        parts = []
        if self.lower is not None:
            parts.append(f"values below {self.lower:g} raised to it")
        if self.lower_percentile is not None:
            parts.append(
                f"values below the pooled {self.lower_percentile:g}th percentile "
                "of the non-zero values raised to it"
            )
        if self.upper is not None:
            parts.append(f"values above {self.upper:g} capped")
        if self.upper_percentile is not None:
            parts.append(
                f"values above the pooled {self.upper_percentile:g}th percentile "
                "of the non-zero values capped"
            )
        return "; ".join(parts)


@dataclass(frozen=True)
class AppliedCap(ResultMixin):
    """A :class:`Cap` resolved to thresholds on actual data (what the readout records)."""

    rule: Cap
    upper: float | None
    lower: float | None
    n_capped: int | None = None
    n_total: int | None = None

    def describe(self) -> str:
        ends = []
        if self.lower is not None:
            ends.append(f"lower {self.lower:.6g}")
        if self.upper is not None:
            ends.append(f"upper {self.upper:.6g}")
        if not ends:
            return f"not capped: no non-zero values ({self.rule.describe()})"
        text = f"capped per unit at {' and '.join(ends)} ({self.rule.describe()})"
        if self.n_capped is not None and self.n_total is not None:
            text += f"; {self.n_capped} of {self.n_total} units changed"
        return text


def nearest_rank(n: int, q: float) -> int:
    """1-based rank ``k`` of the nearest-rank ``q``-th percentile of ``n`` values.

    The smallest ``k`` with ``100·k >= q·n``, compared exactly as the SQL does (an integer
    against the double ``q·n``), so both pick the same order statistic.
    """
    if n < 1:
        raise ValueError("a percentile needs at least one value")
    _check_pct("q", q)
    target = q * n
    k = max(1, math.ceil(target / 100.0))
    # ceil of a rounded quotient can be one off the exact comparison; settle on the rule.
    while k > 1 and 100 * (k - 1) >= target:
        k -= 1
    while 100 * k < target:
        k += 1
    return min(k, n)


def nearest_rank_percentile(values: Any, q: float) -> float | None:
    """The nearest-rank ``q``-th percentile of the non-zero ``values`` (module docstring).

    ``None`` when no value is non-zero. Equals ``numpy.percentile(nonzero, q,
    method="inverted_cdf")``.
    """
    import numpy as np

    v = np.asarray(values, dtype=float)
    nonzero = np.sort(v[v != 0])
    if nonzero.size == 0:
        return None
    return float(nonzero[nearest_rank(int(nonzero.size), q) - 1])


def resolve_cap(cap: Cap, values: Any) -> AppliedCap:
    """Thresholds of ``cap`` on the pooled per-unit ``values`` (all arms together).

    A percentile is the nearest-rank percentile of the non-zero values
    (:func:`nearest_rank_percentile`); ``None`` (no cap on that tail) when every value is 0.
    """
    import numpy as np

    v = np.asarray(values, dtype=float)
    if v.size == 0 and cap.needs_data:
        raise ValueError("cannot compute a percentile cap from no values")
    if not np.all(np.isfinite(v)):
        raise ValueError("values must be finite")
    upper = cap.upper
    lower = cap.lower
    if cap.upper_percentile is not None:
        upper = nearest_rank_percentile(v, cap.upper_percentile)
    if cap.lower_percentile is not None:
        lower = nearest_rank_percentile(v, cap.lower_percentile)
    mask = np.zeros(v.shape, dtype=bool)
    if upper is not None:
        mask |= v > upper
    if lower is not None:
        mask |= v < lower
    changed = int(mask.sum())
    return AppliedCap(rule=cap, upper=upper, lower=lower, n_capped=changed, n_total=int(v.size))


def cap_values(values: Any, cap: Cap | AppliedCap) -> tuple[Any, AppliedCap]:
    """Cap an array of per-unit values; returns ``(capped copy, AppliedCap)``.

    A :class:`Cap` with percentiles is resolved on ``values`` themselves, so pass the
    pooled values of all arms (then split), or resolve once with :func:`resolve_cap` and
    pass the resulting :class:`AppliedCap` for each arm.
    """
    import numpy as np

    v = np.asarray(values, dtype=float)
    applied = cap if isinstance(cap, AppliedCap) else resolve_cap(cap, v)
    out = np.clip(
        v,
        -np.inf if applied.lower is None else applied.lower,
        np.inf if applied.upper is None else applied.upper,
    )
    if isinstance(cap, AppliedCap):
        # Count what this call changed, for this array.
        applied = AppliedCap(
            rule=cap.rule,
            upper=cap.upper,
            lower=cap.lower,
            n_capped=int(np.count_nonzero(out != v)),
            n_total=int(v.size),
        )
    return out, applied
