"""Fieller's interval for a ratio of means: the one implementation every readout uses.

The relative lift is ``ρ - 1`` with ``ρ = μ_t / μ_c``. Its interval is Fieller's (Fieller
1954; see also von Luxburg & Franz 2009 for a modern account): the set of ratios ``ρ`` that
the *same* test used for the p-value does not reject. For a candidate ``ρ`` the statistic

    T(ρ) = (m_t - ρ·m_c) / sqrt(v_t - 2ρ·c + ρ²·v_c)

is z- or t-distributed under ``μ_t = ρ·μ_c`` (``m`` the arm estimates, ``v`` their
variances, ``c = Cov(m_c, m_t)``: zero for independent arms, non-zero for CUPED-adjusted
means because the adjustment centres both arms on the pooled covariate mean). At ``ρ = 1``
``T(1) = Δ / se(Δ)`` is exactly the statistic behind the p-value, so the interval excludes a
relative lift of 0 exactly when ``p < alpha``. Squaring ``|T(ρ)| <= q`` gives the quadratic

    Q(ρ) = a·ρ² - 2b·ρ + k <= 0,   a = m_c² - q²·v_c,   b = m_t·m_c - q²·c,   k = m_t² - q²·v_t,

with ``q`` the critical value of the test. With discriminant ``D = b² - a·k``:

* ``a > 0`` (the control mean is significantly away from 0: ``|m_c|/sqrt(v_c) > q``):
  ``D >= 0`` and the set is the bounded interval ``[(b - √D)/a, (b + √D)/a]``;
* ``a < 0`` and ``D > 0``: the set is the complement ``(-∞, r₁] ∪ [r₂, ∞)``;
* ``a < 0`` and ``D <= 0``: every ratio is compatible with the data (the whole line).

In the last two cases no finite interval is honest: the relative interval is reported as
unbounded. One-sided alternatives invert the one-sided test: for ``"larger"`` the set is
``{ρ: T(ρ) <= q}`` (``q = z_{1-α}``), which is the union of the quadratic's set with the
half-line ``{ρ: m_t - ρ·m_c <= 0}``; ``"smaller"`` mirrors it.

The coefficients and roots (:func:`fieller_coefficients`, :func:`quadratic_roots`) take
floats or numpy arrays (:mod:`abkit.stats._arith`), so the scalar readouts (:func:`fieller_ratio_set`,
:func:`relative_lift`) and the vectorised one (:mod:`abkit.stats.vectorised`) evaluate the
same formula. The fixed-horizon, sequential (at the mSPRT boundary), Bayesian (on the
posterior moments) and guardrail (one-sided bounds) readouts all call :func:`relative_lift`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from abkit.results import Interval
from abkit.stats._arith import (
    Real,
    absolute,
    copysign,
    maximum,
    minimum,
    positive_finite,
    sqrt,
    where,
)
from abkit.stats.estimators import Difference

__all__ = [
    "RelativeLift",
    "describe_set",
    "fieller_coefficients",
    "fieller_ratio_set",
    "quadratic_roots",
    "relative_lift",
    "relative_lift_of",
]

UNBOUNDED_NOTE = "relative-lift interval is unbounded"
_AWAY_FROM_ZERO = "the control mean is not clearly away from 0"


def fieller_coefficients(
    m_c: Real, m_t: Real, v_c: Real, v_t: Real, cov: Real, q: Real
) -> tuple[Real, Real, Real]:
    """``(a, b, k)`` of ``Q(ρ) = a·ρ² - 2b·ρ + k`` (module docstring), floats or arrays.

    The set ``Q(ρ) <= 0`` is unchanged when ``a``, ``b`` and ``k`` share a positive factor.
    They are computed in units of the largest input, which keeps ``b²`` and ``a·k`` finite:
    for means beyond about 1e77 (or below 1e-77) they would overflow (underflow).
    """
    scale = absolute(m_c)
    for term in (
        absolute(m_t),
        q * sqrt(maximum(v_c, 0.0)),
        q * sqrt(maximum(v_t, 0.0)),
        q * sqrt(absolute(cov)),
    ):
        scale = maximum(scale, term)
    scale = where(positive_finite(scale), scale, 1.0)
    s_c, s_t = m_c / scale, m_t / scale
    q2 = q * q
    a = s_c * s_c - q2 * (v_c / scale / scale)
    b = s_t * s_c - q2 * (cov / scale / scale)
    k = s_t * s_t - q2 * (v_t / scale / scale)
    return a, b, k


def quadratic_roots(a: Real, b: Real, k: Real) -> tuple[Real, Real]:
    """Sorted real roots ``r₁ <= r₂`` of ``a·ρ² - 2b·ρ + k`` (``a != 0``), floats or arrays.

    The numerically stable pair ``s/a`` and ``k/s`` with ``s = b + sign(b)·√D`` (no
    cancellation between ``b`` and ``√D``); a negative ``D`` is clamped to 0 (rounding when
    ``a > 0``, where ``D >= 0`` in exact arithmetic). ``s = 0`` only when ``b = D = 0`` (so
    ``k = 0``): a double root at 0.
    """
    root = sqrt(maximum(b * b - a * k, 0.0))
    s = where(b != 0, b + copysign(root, b), root)
    degenerate = s == 0
    s = where(degenerate, 1.0, s)
    r1 = where(degenerate, 0.0, s / a)
    r2 = where(degenerate, 0.0, k / s)
    return minimum(r1, r2), maximum(r1, r2)


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Merge closed intervals (``±inf`` ends allowed) into disjoint sorted ones."""
    out: list[tuple[float, float]] = []
    for lo, hi in sorted(i for i in intervals if i[0] <= i[1]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _quadratic_set(a: float, b: float, k: float) -> list[tuple[float, float]]:
    """``{ρ : a·ρ² - 2b·ρ + k <= 0}`` as disjoint closed intervals (``±inf`` ends)."""
    inf = math.inf
    if a == 0.0:  # a linear inequality
        if b > 0:
            return [(k / (2 * b), inf)]
        if b < 0:
            return [(-inf, k / (2 * b))]
        return [(-inf, inf)] if k <= 0 else []
    if a < 0 and b * b - a * k <= 0:
        return [(-inf, inf)]
    r1, r2 = (float(r) for r in quadratic_roots(a, b, k))
    return [(r1, r2)] if a > 0 else [(-inf, r1), (r2, inf)]


def fieller_ratio_set(
    m_c: float,
    m_t: float,
    v_c: float,
    v_t: float,
    cov: float,
    q: float,
    alternative: str = "two-sided",
) -> tuple[Interval, ...]:
    """Fieller confidence set for ``ρ = μ_t/μ_c`` as disjoint sorted intervals.

    ``q`` is the critical value of the test (two-sided or one-sided as ``alternative``);
    an unbounded end is ``None``. See the module docstring for the derivation.
    """
    a, b, k = (float(x) for x in fieller_coefficients(m_c, m_t, v_c, v_t, cov, q))
    pieces = _quadratic_set(a, b, k)
    if alternative != "two-sided":
        inf = math.inf
        # Half-line where the one-sided statistic is on the non-rejecting side of zero.
        sign = 1.0 if alternative == "larger" else -1.0  # larger: m_t - ρ m_c <= 0
        if m_c == 0:
            half = [(-inf, inf)] if sign * m_t <= 0 else []
        elif sign * m_c > 0:
            half = [(m_t / m_c, inf)]
        else:
            half = [(-inf, m_t / m_c)]
        pieces = _union(pieces + half)
    return tuple(Interval.of(lo, hi) for lo, hi in pieces)


def describe_set(pieces: tuple[Interval, ...]) -> str:
    """A union of intervals as text, e.g. ``(-∞, -0.3] ∪ [0.2, ∞)``; ``∅`` when empty."""
    if not pieces:
        return "∅"
    parts = []
    for lo, hi in pieces:
        left = "(-∞" if lo is None else f"[{lo:.4g}"
        right = "∞)" if hi is None else f"{hi:.4g}]"
        parts.append(f"{left}, {right}")
    return " ∪ ".join(parts)


@dataclass(frozen=True)
class RelativeLift:
    """The relative lift ``m_t/m_c - 1`` and its Fieller interval at one critical value.

    ``ci`` is the interval when the set is one piece with at least one finite end (``None``
    otherwise); ``bounded`` is ``True`` when it is the honest interval of the alternative
    (both ends for two-sided, the tested end for one-sided). ``ratio_set`` is the exact set
    on the relative-lift scale. ``note`` says why there is no lift or no bounded interval.
    """

    lift: float | None
    ci: Interval | None
    bounded: bool
    ratio_set: tuple[Interval, ...]
    note: str

    def unbounded_note(self, *, with_set: bool = False) -> str:
        """Why the interval is unbounded, optionally showing the Fieller set."""
        shown = f" (Fieller set {describe_set(self.ratio_set)})" if with_set else ""
        return f"{UNBOUNDED_NOTE}{shown}: {_AWAY_FROM_ZERO}"


def relative_lift(
    m_c: float, m_t: float, v_c: float, v_t: float, cov: float, q: float, alternative: str
) -> RelativeLift:
    """Relative lift and its Fieller interval at critical value ``q`` (module docstring).

    Every engine reports an unbounded relative interval the same way: ``bounded=False``,
    ``ci`` half-open or ``None``.
    """
    ratio_set = fieller_ratio_set(m_c, m_t, v_c, v_t, cov, q, alternative)
    rel_set = tuple(piece.shift(-1.0) for piece in ratio_set)
    if m_c == 0:
        return RelativeLift(
            None, None, False, rel_set, "control mean is 0: relative lift is undefined"
        )
    lift = m_t / m_c - 1.0
    if not math.isfinite(lift):
        # |m_t/m_c| beyond the double range: no finite relative lift to report.
        return RelativeLift(
            None, None, False, rel_set, "control mean is too close to 0 for a relative lift"
        )
    partial = RelativeLift(lift, None, False, rel_set, "")
    if len(rel_set) != 1:
        return RelativeLift(lift, None, False, rel_set, partial.unbounded_note())
    ci = rel_set[0]
    n_inf = (ci.lower is None) + (ci.upper is None)
    if n_inf == (0 if alternative == "two-sided" else 1):
        return RelativeLift(lift, ci, True, rel_set, "")
    return RelativeLift(lift, ci if n_inf < 2 else None, False, rel_set, partial.unbounded_note())


def relative_lift_of(difference: Difference, q: float, alternative: str) -> RelativeLift:
    """:func:`relative_lift` of a :class:`~abkit.stats.estimators.Difference`'s estimates."""
    return relative_lift(
        difference.control_mean,
        difference.treatment_mean,
        difference.var_control_mean,
        difference.var_treatment_mean,
        difference.cov_means,
        q,
        alternative,
    )
