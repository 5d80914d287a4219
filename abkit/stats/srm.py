"""Sample ratio mismatch (SRM): are the arms the sizes the configuration promised?

Pearson's chi-square goodness-of-fit test of the observed unit counts against the
configured weights (normalised to sum to 1):

    χ² = Σ_k (O_k - E_k)² / E_k,   E_k = N·w_k,   df = K - 1,

computed with :func:`scipy.stats.chisquare`. A mismatch is flagged at ``p < 0.001`` by
default: the conventional threshold (Fabijan et al. 2019, "Diagnosing Sample Ratio
Mismatch in Online Controlled Experiments"; Kohavi, Tang & Xu 2020, ch. 21) that keeps
false alarms rare when SRM is checked on every experiment, because an SRM invalidates the
readout rather than merely weakening it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from abkit.results import ResultMixin

DEFAULT_THRESHOLD = 0.001

__all__ = ["DEFAULT_THRESHOLD", "SRMResult", "srm_test"]


@dataclass(frozen=True)
class SRMResult(ResultMixin):
    """Outcome of :func:`srm_test`. ``mismatch`` is ``p_value < threshold``.

    ``status`` is ``"ok"`` or ``"not enough data"`` (no units at all); ``statistic`` is
    ``None`` when a variant with weight 0 received units (then the mismatch is certain and
    ``p_value`` is 0).
    """

    variants: tuple[str, ...]
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    weights: tuple[float, ...]
    statistic: float | None
    df: int
    p_value: float | None
    mismatch: bool
    threshold: float
    status: str
    note: str

    def _flat_row(self) -> dict[str, Any]:
        return {
            "variants": ", ".join(self.variants),
            "observed": ", ".join(str(o) for o in self.observed),
            "expected": ", ".join(f"{e:.1f}" for e in self.expected),
            "statistic": self.statistic,
            "df": self.df,
            "p_value": self.p_value,
            "mismatch": self.mismatch,
            "status": self.status,
            "note": self.note,
        }


def _as_pairs(
    counts: Mapping[str, int] | Sequence[int], weights: Mapping[str, float] | Sequence[float] | None
) -> tuple[tuple[str, ...], list[float], list[float]]:
    if isinstance(counts, Mapping):
        names = tuple(str(k) for k in counts)
        observed = [counts[k] for k in counts]
        if weights is None:
            w = [1.0] * len(names)
        elif isinstance(weights, Mapping):
            missing = [k for k in counts if k not in weights]
            extra = [k for k in weights if k not in counts]
            if missing:
                raise ValueError(f"no configured weight for variant(s) {missing}")
            # A configured variant with no units at all is still part of the test.
            names = names + tuple(str(k) for k in extra)
            observed = observed + [0] * len(extra)
            w = [float(weights[k]) for k in list(counts) + extra]
        else:
            w = [float(x) for x in weights]
    else:
        observed = list(counts)
        names = tuple(str(i) for i in range(len(observed)))
        if isinstance(weights, Mapping):
            raise TypeError("weights given by name need counts given by name")
        w = [1.0] * len(observed) if weights is None else [float(x) for x in weights]
    if len(w) != len(observed):
        raise ValueError(f"{len(observed)} counts but {len(w)} weights")
    return names, [float(o) for o in observed], w


def srm_test(
    counts: Mapping[str, int] | Sequence[int],
    weights: Mapping[str, float] | Sequence[float] | None = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> SRMResult:
    """Chi-square test of unit counts per variant against configured weights.

    ``counts`` and ``weights`` are both mappings by variant name, or both sequences in
    the same order; ``weights=None`` means equal weights. Weights need not sum to 1.
    """
    names, observed, w = _as_pairs(counts, weights)
    if len(observed) < 2:
        raise ValueError("SRM needs at least two variants")
    if any(o < 0 or o != math.floor(o) for o in observed):
        raise ValueError(f"counts must be non-negative integers, got {observed}")
    if any(x < 0 or not math.isfinite(x) for x in w) or sum(w) <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w}")
    total_w = sum(w)
    w = [x / total_w for x in w]
    n = sum(observed)
    obs_int = tuple(int(o) for o in observed)
    expected = tuple(n * x for x in w)
    k = len(observed)
    if n == 0:
        return SRMResult(
            names, obs_int, expected, tuple(w), None, k - 1, None, False, threshold,
            "not enough data", "no units in any variant",
        )  # fmt: skip
    zero_w = [names[i] for i in range(k) if w[i] == 0 and observed[i] > 0]
    if zero_w:
        return SRMResult(
            names, obs_int, expected, tuple(w), None, k - 1, 0.0, True, threshold, "ok",
            f"units in variant(s) with weight 0: {zero_w}",
        )  # fmt: skip
    # Variants with weight 0 and no units carry no information: leave them out.
    keep = [i for i in range(k) if w[i] > 0]
    from scipy.stats import chisquare

    res = chisquare([observed[i] for i in keep], [expected[i] for i in keep])
    stat = float(res.statistic)
    p = float(res.pvalue)
    notes = []
    if min(expected[i] for i in keep) < 5:
        notes.append("some expected counts are below 5: the chi-square approximation is rough")
    mismatch = p < threshold
    if mismatch:
        notes.append(
            f"sample ratio mismatch (p = {p:.3g} < {threshold:g}): do not trust the readout"
        )
    return SRMResult(
        variants=names,
        observed=obs_int,
        expected=expected,
        weights=tuple(w),
        statistic=stat,
        df=len(keep) - 1,
        p_value=p,
        mismatch=mismatch,
        threshold=threshold,
        status="ok",
        note="; ".join(notes),
    )
