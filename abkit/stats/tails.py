"""Tail probabilities, p-values and critical values of the z and Welch t references.

Every readout refers its statistic to N(0, 1) (``df=None``) or Student's t with ``df``
degrees of freedom. Upper tails come from ``scipy.special.ndtr(-x)`` / ``stdtr(df, -x)``,
which is what ``scipy.stats.norm.sf`` / ``t.sf`` evaluate, computed directly and never as
``1 - cdf``: a p-value of 1e-300 is reported as such instead of 0. The functions take
scalars or numpy arrays alike, so the scalar and vectorised readouts share them.
"""

from __future__ import annotations

from typing import Any

from abkit.vocabulary import ALTERNATIVES

__all__ = ["critical_value", "isf", "p_value", "sf"]


def sf(x: Any, df: Any) -> Any:
    """Upper tail ``P(T > x)`` of N(0, 1) (``df`` None) or Student t(df); vectorised."""
    from scipy import special

    if df is None:
        return special.ndtr(-x)
    return special.stdtr(df, -x)


def isf(p: Any, df: Any) -> Any:
    """Inverse of :func:`sf`: the ``q`` with ``P(T > q) = p``; vectorised."""
    from scipy import special

    if df is None:
        return -special.ndtri(p)
    return -special.stdtrit(df, p)


def p_value(statistic: float, df: float | None, alternative: str) -> float:
    """Tail probability of ``statistic`` under N(0, 1) (``df=None``) or t(df).

    ``"two-sided"`` is ``2·P(T > |s|)``, ``"larger"`` (treatment > control) ``P(T > s)``,
    ``"smaller"`` ``P(T < s) = P(T > -s)``.
    """
    if alternative == "two-sided":
        p = 2.0 * float(sf(abs(statistic), df))
    elif alternative == "larger":
        p = float(sf(statistic, df))
    elif alternative == "smaller":
        p = float(sf(-statistic, df))
    else:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    return min(p, 1.0)


def critical_value(alpha: float, df: float | None, alternative: str) -> float:
    """``q`` with ``P(T > q) = alpha/2`` (two-sided) or ``alpha`` (one-sided)."""
    tail = alpha / 2.0 if alternative == "two-sided" else alpha
    return float(isf(tail, df))
