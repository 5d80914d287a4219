"""Multiple-testing corrections across metrics, variants and segments.

* Holm (1979) step-down, controls the family-wise error rate: with sorted p-values
  ``p_(1) <= … <= p_(m)``, ``p̃_(i) = max_{j<=i} min(1, (m - j + 1)·p_(j))``.
* Benjamini & Hochberg (1995) step-up, controls the false discovery rate under
  independence or positive dependence: ``p̃_(i) = min_{j>=i} min(1, m/j·p_(j))``.
* Bonferroni ``min(1, m·p)`` and ``"none"`` for completeness.

The adjusted p-values equal statsmodels' ``multipletests`` (``"holm"``, ``"fdr_bh"``,
``"bonferroni"``) to floating-point rounding. ``None`` entries (comparisons without a
p-value, for example "not enough data") are left out of the family and stay ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from abkit.vocabulary import CORRECTIONS, Correction

if TYPE_CHECKING:
    from abkit.stats.lift import LiftResult

_ALIASES: dict[str | None, Correction] = {
    "holm": "holm",
    "bh": "bh",
    "fdr_bh": "bh",
    "benjamini-hochberg": "bh",
    "bonferroni": "bonferroni",
    "none": "none",
    None: "none",
}
CORRECTION_NAMES = {
    "holm": "Holm",
    "bh": "Benjamini-Hochberg",
    "bonferroni": "Bonferroni",
    "none": "none",
}

__all__ = [
    "CORRECTION_NAMES",
    "adjust_pvalues",
    "apply_correction",
    "correction_note",
    "normalise_method",
]


def normalise_method(method: str | None) -> Correction:
    """Canonical correction name: ``"holm"``, ``"bh"``, ``"bonferroni"`` or ``"none"``."""
    key = method.lower() if isinstance(method, str) else method
    if key not in _ALIASES:
        choices = ", ".join(CORRECTIONS[:-1]) + f" or {CORRECTIONS[-1]}"
        raise ValueError(f"unknown correction {method!r}; use {choices}")
    return _ALIASES[key]


def _adjust(p: list[float], method: str) -> list[float]:
    m = len(p)
    if m == 0 or method == "none":
        return list(p)
    if method == "bonferroni":
        return [min(1.0, m * x) for x in p]
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):  # rank 0 is the smallest p
            running = max(running, min(1.0, (m - rank) * p[i]))
            out[i] = running
        return out
    # Benjamini-Hochberg: step up from the largest p-value.
    running = 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, min(1.0, m / (rank + 1) * p[i]))
        out[i] = running
    return out


def adjust_pvalues(p: Iterable[float | None], method: str | None = "holm") -> list[float | None]:
    """Adjusted p-values in the input order; ``None`` stays ``None`` and is not counted."""
    values = list(p)
    canon = normalise_method(method)
    present = [(i, x) for i, x in enumerate(values) if x is not None]
    for i, x in present:
        if not 0.0 <= x <= 1.0:
            raise ValueError(f"p-values must be in [0, 1], got {x!r} at position {i}")
    adjusted = _adjust([float(x) for _, x in present], canon)
    out: list[float | None] = [None] * len(values)
    for (i, _), a in zip(present, adjusted, strict=True):
        out[i] = a
    return out


def correction_note(name: str, family: int, *, intervals_adjusted: bool) -> str:
    """What a readout's note says about the correction applied to it."""
    intervals = (
        "so do the adjusted intervals (abs_ci_adjusted, rel_ci_adjusted)"
        if intervals_adjusted
        else "intervals are unadjusted"
    )
    return (
        f"{name} correction over {family} comparisons; significance uses the adjusted "
        f"p-value, {intervals}"
    )


def apply_correction(
    results: Sequence[LiftResult], method: str | None = "holm"
) -> list[LiftResult]:
    """Adjust the p-values of a family of readouts together.

    Returns new results with ``p_value_adjusted``, ``correction`` (the method's name) and
    ``significant`` re-decided on the adjusted p-value. Intervals stay per-comparison
    (unadjusted) and the note says so: they agree with the unadjusted ``p_value``.
    """
    canon = normalise_method(method)
    adjusted = adjust_pvalues([r.p_value for r in results], canon)
    name = CORRECTION_NAMES[canon]
    family = sum(a is not None for a in adjusted)
    out = []
    for r, a in zip(results, adjusted, strict=True):
        if a is None:
            out.append(replace(r, correction=name))
            continue
        note = r.note
        if canon != "none":
            extra = correction_note(name, family, intervals_adjusted=False)
            note = f"{note}; {extra}" if note else extra
        out.append(
            replace(r, p_value_adjusted=a, correction=name, significant=a < r.alpha, note=note)
        )
    return out
