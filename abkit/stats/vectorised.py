"""Many fixed-horizon comparisons in one vectorised call: :func:`compare_many`.

The formulas are those of the scalar readout (:mod:`abkit.stats.fixed`), evaluated with
numpy on arrays of sufficient statistics: the same tail functions (:mod:`abkit.stats.tails`)
and the same Fieller coefficients and roots (:mod:`abkit.stats.fieller`). The per-arm
estimators and the CUPED adjustment are the array forms of
:mod:`abkit.stats.estimators` (tested equal element by element).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from abkit.results import Interval
from abkit.stats._common import NOT_ENOUGH_DATA, OK, P_FLOOR, check_alpha_alternative
from abkit.stats.estimators import (
    ESTIMATED_TYPES,
    cuped_moments,
    mean_var_of_mean,
    proportion_var_of_mean,
    ratio_var_of_mean,
)
from abkit.stats.fieller import fieller_coefficients, quadratic_roots
from abkit.stats.lift import TEST_NAMES, LiftResult
from abkit.stats.tails import isf, sf
from abkit.vocabulary import Alternative, MetricType

if TYPE_CHECKING:  # pragma: no cover - pandas is imported only when a frame is asked for
    import pandas as pd

__all__ = ["LiftArrays", "compare_many"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
StrArray = npt.NDArray[np.str_]

_ARRAY_FIELDS = (
    "control_mean",
    "treatment_mean",
    "abs_lift",
    "abs_ci_lower",
    "abs_ci_upper",
    "rel_lift",
    "rel_ci_lower",
    "rel_ci_upper",
    "p_value",
    "se_abs",
    "statistic",
    "df",
)


@dataclass(frozen=True)
class LiftArrays:
    """The readouts of :func:`compare_many`, one array element per comparison.

    Float arrays hold ``NaN`` only where the element has no value (``status`` is
    ``"not enough data"``, an open end of a one-sided or unbounded interval, a relative
    lift with control mean 0, ``df`` of a z-test); :meth:`to_frame` turns those into
    ``<NA>`` and :meth:`result` into ``None``, so no NaN reaches a report. As in
    :class:`LiftResult`, ``control_mean``/``treatment_mean`` are the raw arm means and, with
    CUPED, ``*_mean_adjusted`` the adjusted ones the effect is computed on.
    """

    metric_type: str
    alpha: float
    alternative: Alternative
    control_mean: FloatArray
    treatment_mean: FloatArray
    abs_lift: FloatArray
    abs_ci_lower: FloatArray
    abs_ci_upper: FloatArray
    rel_lift: FloatArray
    rel_ci_lower: FloatArray
    rel_ci_upper: FloatArray
    rel_ci_bounded: BoolArray
    p_value: FloatArray
    significant: BoolArray
    se_abs: FloatArray
    statistic: FloatArray
    df: FloatArray
    n_control: IntArray
    n_treatment: IntArray
    status: StrArray
    cuped: bool = False
    variance_reduction: FloatArray | None = None
    control_mean_adjusted: FloatArray | None = None
    treatment_mean_adjusted: FloatArray | None = None

    def __len__(self) -> int:
        return int(self.p_value.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """One row per comparison; missing values are ``<NA>`` (nullable ``Float64``)."""
        import pandas as pd

        data: dict[str, Any] = {
            "metric_type": self.metric_type,
            "n_control": self.n_control,
            "n_treatment": self.n_treatment,
        }
        for name in _ARRAY_FIELDS:
            data[name] = pd.array(getattr(self, name), dtype="Float64")
            # pd.array keeps NaN as a value for float input; make it missing.
            data[name][pd.isna(getattr(self, name))] = pd.NA
        data["rel_ci_bounded"] = self.rel_ci_bounded
        data["significant"] = self.significant
        optional = ("variance_reduction", "control_mean_adjusted", "treatment_mean_adjusted")
        for name in optional:
            values = getattr(self, name)
            if values is not None:
                column = pd.array(values, dtype="Float64")
                column[pd.isna(values)] = pd.NA
                data[name] = column
        data["status"] = self.status
        return pd.DataFrame(data)

    def result(self, i: int) -> LiftResult:
        """Element ``i`` as a :class:`LiftResult` (``None`` for missing values)."""

        def val(name: str) -> float | None:
            values = getattr(self, name)
            if values is None:
                return None
            x = float(values[i])
            return None if math.isnan(x) else x

        ok = self.status[i] == OK
        abs_ci = Interval(val("abs_ci_lower"), val("abs_ci_upper")) if ok else None
        bounded = bool(self.rel_ci_bounded[i])
        rel_ci = Interval(val("rel_ci_lower"), val("rel_ci_upper")) if bounded else None
        return LiftResult(
            metric_type=self.metric_type,
            control_mean=val("control_mean"),
            treatment_mean=val("treatment_mean"),
            abs_lift=val("abs_lift"),
            abs_ci=abs_ci,
            rel_lift=val("rel_lift"),
            rel_ci=rel_ci,
            rel_ci_bounded=bounded,
            p_value=val("p_value"),
            significant=bool(self.significant[i]),
            method="fixed",
            test=TEST_NAMES[self.metric_type] + (" with CUPED" if self.cuped else ""),
            n_control=int(self.n_control[i]),
            n_treatment=int(self.n_treatment[i]),
            variance_reduction=val("variance_reduction"),
            status=str(self.status[i]),
            note=""
            if ok
            else "not enough data (vectorised path: n < 2, zero variance or zero denominator)",
            alpha=self.alpha,
            alternative=self.alternative,
            se_abs=val("se_abs"),
            statistic=val("statistic"),
            df=val("df"),
            cuped=self.cuped,
            control_mean_adjusted=val("control_mean_adjusted"),
            treatment_mean_adjusted=val("treatment_mean_adjusted"),
        )


def _arm_arrays(
    arm: Mapping[str, Any], metric_type: str
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(n, mean, var_of_mean)`` arrays from a mapping of sufficient-statistic arrays."""

    def col(name: str) -> FloatArray:
        try:
            return np.asarray(arm[name], dtype=float)
        except KeyError:
            raise KeyError(
                f"compare_many: missing column {name!r} for a {metric_type} metric"
            ) from None

    n = col("n")
    # Cells with n < 2 or a zero denominator get placeholder sums here and are masked as
    # "not enough data" by compare_many.
    safe_n = np.where(n > 1, n, 2.0)
    if metric_type == "ratio":
        ys, yy, ds, dd, yd = (
            col(c) for c in ("num_sum", "num_sum_sq", "den_sum", "den_sum_sq", "num_den_sum")
        )
        safe_ds = np.where(ds != 0, ds, 1.0)
        v = ratio_var_of_mean(safe_n, ys, yy, safe_ds, dd, yd)
        return n, np.where(ds != 0, ys / safe_ds, np.nan), np.where(ds != 0, v, np.nan)
    s, ss = col("sum"), col("sum_sq")
    rule = proportion_var_of_mean if metric_type == "proportion" else mean_var_of_mean
    return n, s / np.where(n > 0, n, 1.0), np.asarray(rule(safe_n, s, ss), dtype=float)


def _cuped_arrays(
    control: Mapping[str, Any], treatment: Mapping[str, Any]
) -> dict[str, FloatArray]:
    """Per-arm moments from arrays of sums, then :func:`abkit.stats.estimators.cuped_moments`."""
    arms = []
    for arm in (control, treatment):
        try:
            cols = {
                k: np.asarray(arm[k], dtype=float)
                for k in ("n", "sum", "sum_sq", "cov_sum", "cov_sum_sq", "cross_sum")
            }
        except KeyError as exc:
            raise KeyError(f"compare_many(cuped=True): missing column {exc.args[0]!r}") from None
        n = cols["n"]
        safe_n = np.where(n > 0, n, 1.0)
        s_yy = np.maximum(cols["sum_sq"] - cols["sum"] ** 2 / safe_n, 0.0)
        s_xx = np.maximum(cols["cov_sum_sq"] - cols["cov_sum"] ** 2 / safe_n, 0.0)
        s_xy = cols["cross_sum"] - cols["cov_sum"] * cols["sum"] / safe_n
        arms.append(
            (
                n,
                safe_n,
                cols["sum"] / safe_n,
                cols["cov_sum"] / safe_n,
                s_yy,
                s_xx,
                s_xy,
                cols["cov_sum_sq"],
            )
        )
    (n_c, sn_c, y_c, x_c, yy_c, xx_c, xy_c, q_c), (n_t, sn_t, y_t, x_t, yy_t, xx_t, xy_t, q_t) = (
        arms
    )
    sxx = xx_c + xx_t
    scale = np.abs(q_c) + np.abs(q_t)
    useful = sxx > 1e-12 * np.maximum(scale, 1e-300)
    theta = np.where(useful, (xy_c + xy_t) / np.where(useful, sxx, 1.0), 0.0)
    big_n = np.where(n_c + n_t > 0, n_c + n_t, 1.0)
    d_c = np.where(n_c > 1, n_c - 1.0, 1.0)
    d_t = np.where(n_t > 1, n_t - 1.0, 1.0)
    # Sample (n - 1) moments per arm, then the scalar readout's CUPED algebra on arrays.
    adj = cuped_moments(
        theta,
        n_c / big_n,
        n_t / big_n,
        (sn_c, y_c, x_c, yy_c / d_c, xx_c / d_c, xy_c / d_c),
        (sn_t, y_t, x_t, yy_t / d_t, xx_t / d_t, xy_t / d_t),
    )
    raw = adj.raw_var
    reduction = np.where(raw > 0, 1.0 - (adj.res_c + adj.res_t) / np.where(raw > 0, raw, 1.0), 0.0)
    arrays = {
        "m_c": adj.m_c, "m_t": adj.m_t, "v_c": adj.var_c, "v_t": adj.var_t, "cov": adj.cov,
        "df_c": adj.res_c, "df_t": adj.res_t,
    }  # fmt: skip
    out = {name: np.asarray(value, dtype=float) for name, value in arrays.items()}
    return out | {"n_c": n_c, "n_t": n_t, "y_c": y_c, "y_t": y_t, "reduction": reduction}


def compare_many(
    control: Mapping[str, Any],
    treatment: Mapping[str, Any],
    *,
    metric_type: MetricType,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    cuped: bool = False,
) -> LiftArrays:
    """Many fixed-horizon comparisons in one vectorised call.

    ``control`` and ``treatment`` map the :class:`MeanStats` field names (``n``, ``sum``,
    ``sum_sq``, and ``cov_sum``, ``cov_sum_sq``, ``cross_sum`` for ``cuped=True``) or the
    :class:`RatioStats` names to equal-length arrays (a dict of numpy arrays or a
    DataFrame). Element ``i`` equals ``compare(control_i, treatment_i)`` (same formulas,
    same Fieller set; tested), so a warehouse aggregate of thousands of metric-by-variant
    cells is read out in milliseconds. Inputs are not validated element by element (a
    proportion's ``sum_sq == sum`` is assumed): use :func:`compare` for untrusted input.
    """
    check_alpha_alternative(alpha, alternative)
    if metric_type not in ESTIMATED_TYPES:
        raise ValueError(f"metric_type must be one of {ESTIMATED_TYPES}, got {metric_type!r}")
    if cuped and metric_type == "ratio":
        raise ValueError(
            "compare_many: CUPED for ratio metrics is not vectorised; use compare() per cell"
        )
    reduction: FloatArray | None = None
    raw_c: FloatArray | None = None
    raw_t: FloatArray | None = None
    with np.errstate(all="ignore"):
        if cuped:
            arr = _cuped_arrays(control, treatment)
            n_c, n_t, m_c, m_t = arr["n_c"], arr["n_t"], arr["m_c"], arr["m_t"]
            raw_c, raw_t = arr["y_c"], arr["y_t"]
            v_c, v_t, cov = arr["v_c"], arr["v_t"], arr["cov"]
            var = arr["df_c"] + arr["df_t"]
            w_c, w_t = arr["df_c"], arr["df_t"]  # Welch df from the residual variances
            reduction = arr["reduction"]
        else:
            n_c, m_c, v_c = _arm_arrays(control, metric_type)
            n_t, m_t, v_t = _arm_arrays(treatment, metric_type)
            cov = np.zeros(n_c.shape)
            var = v_c + v_t
            w_c, w_t = v_c, v_t
    if n_c.shape != n_t.shape:
        raise ValueError("control and treatment arrays differ in length")
    ok = (n_c >= 2) & (n_t >= 2) & np.isfinite(var) & (var > 0)
    with np.errstate(all="ignore"):
        se = np.sqrt(np.where(ok, var, 1.0))
        d = m_t - m_c
        stat = np.where(ok, d, 0.0) / se
        if metric_type == "mean":
            # Welch–Satterthwaite divided through by (w_c + w_t)² (as estimators.welch_df),
            # so squaring huge or tiny variances cannot overflow or underflow.
            total = np.where(w_c + w_t > 0, w_c + w_t, 1.0)
            f_c, f_t = w_c / total, w_t / total
            df = 1.0 / (f_c * f_c / np.maximum(n_c - 1, 1) + f_t * f_t / np.maximum(n_t - 1, 1))
            df = np.where(ok, df, 1.0)
            dist_df: FloatArray | None = df
        else:
            df = np.full(n_c.shape, np.nan)
            dist_df = None
        if alternative == "two-sided":
            p = np.minimum(2.0 * sf(np.abs(stat), dist_df), 1.0)
            q = isf(alpha / 2.0, dist_df)
            lo, hi = d - q * se, d + q * se
        elif alternative == "larger":
            p = sf(stat, dist_df)
            q = isf(alpha, dist_df)
            lo, hi = d - q * se, np.full(d.shape, np.nan)
        else:
            p = sf(-stat, dist_df)
            q = isf(alpha, dist_df)
            lo, hi = np.full(d.shape, np.nan), d + q * se
        p = np.where(p == 0.0, P_FLOOR, p)
        # Fieller (abkit.stats.fieller): bounded exactly when a = m_c² - q²v_c > 0; the
        # one-sided sets are then half-lines from one of the two roots.
        a, b, k = fieller_coefficients(m_c, m_t, v_c, v_t, cov, q)
        bounded = ok & (a > 0) & (m_c != 0)
        r1, r2 = quadratic_roots(a, b, k)
        rlo, rhi = r1 - 1.0, r2 - 1.0
        nan = np.full(d.shape, np.nan)
        if alternative == "two-sided":
            rel_lo, rel_hi = rlo, rhi
        else:
            # One-sided sets are half-lines; which end stays depends on the sign of m_c.
            keep_lower = (m_c > 0) == (alternative == "larger")
            rel_lo = np.where(keep_lower, rlo, nan)
            rel_hi = np.where(keep_lower, nan, rhi)
        rel_lo = np.where(bounded, rel_lo, np.nan)
        rel_hi = np.where(bounded, rel_hi, np.nan)
        rel = np.where(ok & (m_c != 0), m_t / np.where(m_c != 0, m_c, 1.0) - 1.0, np.nan)
        rel = np.where(np.isfinite(rel), rel, np.nan)  # overflow: no relative lift (as scalar)

    def mask(x: FloatArray) -> FloatArray:
        return np.where(ok, x, np.nan)

    status = np.where(ok, OK, NOT_ENOUGH_DATA)
    return LiftArrays(
        metric_type=metric_type,
        alpha=alpha,
        alternative=alternative,
        control_mean=mask(m_c if raw_c is None else raw_c),
        treatment_mean=mask(m_t if raw_t is None else raw_t),
        abs_lift=mask(d),
        abs_ci_lower=mask(lo),
        abs_ci_upper=mask(hi),
        rel_lift=rel,
        rel_ci_lower=rel_lo,
        rel_ci_upper=rel_hi,
        rel_ci_bounded=bounded,
        p_value=mask(p),
        significant=ok & (mask(p) < alpha),
        se_abs=mask(se),
        statistic=mask(stat),
        df=np.where(ok, df, np.nan),
        n_control=n_c.astype(np.int64),
        n_treatment=n_t.astype(np.int64),
        status=status,
        cuped=cuped,
        variance_reduction=None if reduction is None else mask(reduction),
        control_mean_adjusted=None if raw_c is None else mask(m_c),
        treatment_mean_adjusted=None if raw_t is None else mask(m_t),
    )
