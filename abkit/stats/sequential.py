"""Always-valid inference: the mixture sequential probability ratio test (mSPRT).

Peeking at a fixed-horizon p-value every day and stopping at the first ``p < α`` inflates
the false-positive rate far above ``α`` (14 daily looks at α = 0.05 give about 20%). The
mSPRT (Robbins 1970; Johari, Koomen, Pekelis & Walsh 2017/2022, "Always Valid Inference:
Continuous Monitoring of A/B Tests", *Operations Research* 70(3)) gives p-values and
confidence intervals that stay valid at *every* look, whatever the stopping rule.

Model. At a look the estimated difference ``θ̂`` (treatment minus control) is
approximately ``N(θ, V)`` with ``V = se²`` from :mod:`abkit.stats.estimators` (a normal
approximation; Welch's df is not used). Mixing the likelihood ratio of ``θ`` against
``θ₀`` over a Gaussian ``θ - θ₀ ~ N(0, τ²)`` gives, with ``z = (θ̂ - θ₀)/√V`` and
``ρ = τ²/V``,

    Λ = (1 + ρ)^(-1/2) · exp( z²·ρ / (2(1 + ρ)) )                       (two-sided)
    Λ = 2·(1 + ρ)^(-1/2) · exp( z²·ρ / (2(1 + ρ)) ) · Φ( z·√(ρ/(1+ρ)) )   (one-sided,
                                                    half-normal mixing on the tested side)

Under ``H0: θ = θ₀`` ``Λ`` is a non-negative martingale with mean 1, so by Ville's
inequality ``P(sup_t Λ_t >= 1/α) <= α``. Hence:

* the always-valid p-value ``p_t = min(1, 1/Λ_t)`` (and its running minimum over looks);
* ``Λ`` is increasing in ``|z|`` (in ``z`` one-sided), so ``Λ >= 1/α`` iff ``|z| >= c``
  with the boundary ``c² = (1+ρ)/ρ · (2·log(1/α) + log(1+ρ))`` (one-sided: the root of
  ``Λ(c) = 1/α``);
* the confidence sequence ``θ̂ ± c·√V``, intersected over looks;
* the relative lift's sequence is Fieller's interval (see :mod:`abkit.stats.fieller`) at
  the same critical value ``c``, so it excludes 0 exactly when the always-valid p < α. It
  treats ``τ`` for ``μ_t - (1+r)μ_c`` as scaled with that contrast's standard error, which
  is what makes the boundary the same for every ``r``.

Choosing τ. ``τ`` is the scale of the effects the test is tuned to find, and it must be
fixed before the data are seen (re-tuning it on the data breaks the martingale). The
width of the sequence at a variance ``V`` is minimised by ``ρ = r*`` with
``r* = 2·log(1/α) + log(1 + r*)`` (≈ 8.2 at α = 0.05). abkit's default targets the
planned horizon: with ``mde`` given, ``V_N = (mde / (z₁₋α/₂ + z₁₋β))²`` is the variance at
the fixed-horizon sample size for that MDE and ``τ = √(r*·V_N)``; at α = 0.05 and 80%
power this is ``τ ≈ 1.02·mde``, i.e. "mix over effects the size of the MDE". Without an
``mde`` or ``tau`` the default is ``mde = 5%`` of the control mean (taken at the first look
of a series), recorded in ``tau_source``.

Why mSPRT rather than group-sequential alpha spending (O'Brien–Fleming, Lan–DeMets):
spending functions need the number and information fraction of looks fixed (or at least
bounded) in advance and lose validity if the team peeks more often than planned; the
mSPRT is valid for any number of looks at any times, and yields a p-value and interval at
every look, which is what a dashboard refreshed daily needs. The price is power: at
α = 0.05 and the default τ the boundary at the planned horizon is ``|z| >= 3.03`` instead
of 1.96, so reaching the same power *at the horizon* needs about
``((3.03 + 0.84)/(1.96 + 0.84))² ≈ 1.9×`` the fixed-horizon sample; with 14 looks the
maximum sample is about 1.77× and, when the effect is real, the *expected* sample only
about 1.14× (:func:`plan_sequential`; numbers in ``docs/statistics-planning-sequential.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import optimize, special
from scipy import stats as sps

from abkit.errors import NotEnoughDataError
from abkit.results import Interval, ResultMixin, html_table
from abkit.stats._common import NOT_ENOUGH_DATA, OK, P_FLOOR, check_alpha_alternative
from abkit.stats.estimators import Difference, estimate_difference
from abkit.stats.fieller import relative_lift_of
from abkit.stats.lift import LiftResult
from abkit.stats.sufficient import MeanStats, RatioStats
from abkit.vocabulary import Method, MetricType

if TYPE_CHECKING:  # pragma: no cover - pandas is imported only when a frame is asked for
    import pandas as pd

DEFAULT_RELATIVE_MDE = 0.05


__all__ = [
    "SequentialEngine",
    "SequentialLook",
    "SequentialPlan",
    "SequentialResult",
    "SequentialSeries",
    "always_valid_pvalue",
    "log_mixture_lr",
    "optimal_rho",
    "plan_sequential",
    "sequential_boundary",
    "sequential_readout",
    "sequential_series",
    "tau_for_mde",
]


# --------------------------------------------------------------------- vectorised core


def log_mixture_lr(z: Any, rho: Any, alternative: str = "two-sided") -> np.ndarray:
    """``log Λ`` of the mSPRT for standardised statistics ``z`` and ``ρ = τ²/V`` (vectorised).

    Formulas in the module docstring; ``"smaller"`` uses ``-z``. Computed in logs (with
    ``log Φ`` from :func:`scipy.special.log_ndtr`) so it never overflows.
    """
    z = np.asarray(z, dtype=float)
    rho = np.asarray(rho, dtype=float)
    base = -0.5 * np.log1p(rho) + 0.5 * z * z * rho / (1.0 + rho)
    if alternative == "two-sided":
        return base
    signed = z if alternative == "larger" else -z
    return math.log(2.0) + base + special.log_ndtr(signed * np.sqrt(rho / (1.0 + rho)))


def always_valid_pvalue(z: Any, rho: Any, alternative: str = "two-sided") -> np.ndarray:
    """``min(1, 1/Λ)`` at one look (vectorised); take a running minimum over looks."""
    return np.exp(-np.maximum(log_mixture_lr(z, rho, alternative), 0.0))


def sequential_boundary(rho: Any, alpha: float, alternative: str = "two-sided") -> np.ndarray:
    """Critical ``c``: the look rejects iff ``|z| >= c`` (two-sided) or ``±z >= c``.

    Two-sided closed form ``c = √((1+ρ)/ρ · (2·log(1/α) + log(1+ρ)))``; one-sided by root
    finding on the increasing ``log Λ(c) = log(1/α)``.
    """
    check_alpha_alternative(alpha, alternative)
    rho_arr = np.asarray(rho, dtype=float)
    if alternative == "two-sided":
        return np.sqrt(
            (1.0 + rho_arr) / rho_arr * (2.0 * math.log(1.0 / alpha) + np.log1p(rho_arr))
        )
    target = math.log(1.0 / alpha)
    flat = rho_arr.reshape(-1)
    out = np.empty_like(flat)
    for i, r in enumerate(flat):
        two = math.sqrt((1.0 + r) / r * (2.0 * target + math.log1p(r)))
        # The one-sided boundary lies below the two-sided one at the same α.
        out[i] = optimize.brentq(
            lambda c, r=r: float(log_mixture_lr(c, r, "larger")) - target, 0.0, two + 1.0
        )
    return out.reshape(rho_arr.shape)


def optimal_rho(alpha: float) -> float:
    """``r*`` minimising the two-sided boundary width at a given variance.

    Width² ∝ (1+1/r)(2·log(1/α) + log(1+r)); setting the derivative to zero gives the
    fixed point ``r = 2·log(1/α) + log(1+r)`` (≈ 8.2 at α = 0.05).
    """
    two_l = 2.0 * math.log(1.0 / alpha)
    r = two_l
    for _ in range(100):  # a contraction: |d/dr log(1+r)| < 1
        r = two_l + math.log1p(r)
    return r


def tau_for_mde(mde: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """τ tuned to the fixed-horizon sample size that detects ``mde`` (module docstring)."""
    if not (math.isfinite(mde) and mde != 0):
        raise ValueError("mde must be a non-zero finite number")
    se_horizon = abs(mde) / (sps.norm.isf(alpha / 2) + sps.norm.isf(1 - power))
    return float(math.sqrt(optimal_rho(alpha)) * se_horizon)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SequentialResult(ResultMixin):
    """An always-valid readout at one look.

    ``p_value`` is ``min(1, 1/Λ)`` at this look (pass a series to
    :func:`sequential_series` for the running minimum); ``abs_ci``/``rel_ci`` are the
    confidence-sequence intervals at this look (``None`` for an unbounded end).
    ``boundary_z`` is the ``|z|`` the look must reach to reject; ``tau`` the mixing sd and
    ``tau_source`` how it was chosen (``"given"``, ``"mde"``, ``"default 5% of control
    mean"``).
    """

    method: str
    alpha: float
    alternative: str
    tau: float | None
    tau_source: str
    rho: float | None
    abs_lift: float | None
    se_abs: float | None
    z: float | None
    log_lr: float | None
    boundary_z: float | None
    p_value: float | None
    abs_ci: Interval | None
    rel_lift: float | None
    rel_ci: Interval | None
    rel_ci_bounded: bool
    significant: bool
    n_control: int
    n_treatment: int
    status: str
    note: str


def _resolve_tau(
    diff: Difference | None,
    tau: float | None,
    mde: float | None,
    mde_relative: float | None,
    alpha: float,
    power: float,
) -> tuple[float, str]:
    if tau is not None:
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be positive, got {tau!r}")
        return float(tau), "given"
    if mde is not None:
        return tau_for_mde(mde, alpha, power), "mde"
    if diff is None or diff.control_mean == 0:
        raise NotEnoughDataError("tau needs tau=, mde= or a non-zero control mean")
    rel = DEFAULT_RELATIVE_MDE if mde_relative is None else mde_relative
    source = "mde_relative" if mde_relative is not None else "default 5% of control mean"
    return tau_for_mde(rel * abs(diff.control_mean), alpha, power), source


def _empty(alpha: float, alternative: str, n_c: int, n_t: int, reason: str) -> SequentialResult:
    return SequentialResult(
        method="msprt",
        alpha=alpha,
        alternative=alternative,
        tau=None,
        tau_source="",
        rho=None,
        abs_lift=None,
        se_abs=None,
        z=None,
        log_lr=None,
        boundary_z=None,
        p_value=None,
        abs_ci=None,
        rel_lift=None,
        rel_ci=None,
        rel_ci_bounded=False,
        significant=False,
        n_control=n_c,
        n_treatment=n_t,
        status=NOT_ENOUGH_DATA,
        note=reason,
    )


def sequential_readout(
    difference: Difference,
    *,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    tau: float | None = None,
    mde: float | None = None,
    mde_relative: float | None = None,
    power: float = 0.8,
) -> SequentialResult:
    """mSPRT readout of one look (formulas in the module docstring).

    ``tau`` (absolute units of the metric) overrides the default; otherwise ``mde``
    (absolute) or ``mde_relative`` (fraction of the control mean) sets it through
    :func:`tau_for_mde` at ``power``. Returns ``status="not enough data"`` rather than
    NaN when the standard error is zero or τ cannot be set.
    """
    check_alpha_alternative(alpha, alternative)
    n_c, n_t = difference.n_control, difference.n_treatment
    se = difference.se_abs
    if not (math.isfinite(se) and se > 0):
        return _empty(alpha, alternative, n_c, n_t, "zero standard error")
    try:
        tau_value, source = _resolve_tau(difference, tau, mde, mde_relative, alpha, power)
    except NotEnoughDataError as exc:
        return _empty(alpha, alternative, n_c, n_t, str(exc))
    rho = float((tau_value / se) ** 2) if tau_value / se < 1e150 else math.inf
    if not (0.0 < rho < 1e300):
        # τ is negligible (or overwhelming) next to the standard error: the mixture
        # carries no information at this scale, and the boundary would not be finite.
        return _empty(
            alpha, alternative, n_c, n_t, f"tau={tau_value:.3g} is out of scale with se={se:.3g}"
        )
    z = difference.abs_diff / se
    log_lr = float(log_mixture_lr(z, rho, alternative))
    p = math.exp(-max(log_lr, 0.0))
    notes = []
    if p == 0.0:
        p = P_FLOOR
        notes.append("p-value below the smallest representable double")
    c = float(sequential_boundary(rho, alpha, alternative))
    d = difference.abs_diff
    if alternative == "two-sided":
        abs_ci = Interval(d - c * se, d + c * se)
    elif alternative == "larger":
        abs_ci = Interval(d - c * se, None)
    else:
        abs_ci = Interval(None, d + c * se)
    rel = relative_lift_of(difference, c, alternative)
    if rel.note:
        notes.append(rel.note)
    notes.append(f"mSPRT, tau={tau_value:.4g} ({source})")
    return SequentialResult(
        method="msprt",
        alpha=alpha,
        alternative=alternative,
        tau=tau_value,
        tau_source=source,
        rho=rho,
        abs_lift=d,
        se_abs=se,
        z=z,
        log_lr=log_lr,
        boundary_z=c,
        p_value=p,
        abs_ci=abs_ci,
        rel_lift=rel.lift,
        rel_ci=rel.ci,
        rel_ci_bounded=rel.bounded,
        significant=p < alpha,
        n_control=n_c,
        n_treatment=n_t,
        status=OK,
        note="; ".join(notes),
    )


class SequentialEngine:
    """The ``"sequential"`` readout engine: the mSPRT at this look (:func:`sequential_readout`).

    Options: ``tau``, ``mde``, ``mde_relative``, ``power``.
    """

    method: Method = "sequential"
    options: frozenset[str] = frozenset({"tau", "mde", "mde_relative", "power"})

    def read(
        self, difference: Difference, base: LiftResult, options: Mapping[str, Any]
    ) -> LiftResult:
        result = sequential_readout(
            difference, alpha=base.alpha, alternative=base.alternative, **options
        )
        return base.with_engine(result, method=self.method, label="always-valid")


# --------------------------------------------------------------------------- series


@dataclass(frozen=True)
class SequentialLook(ResultMixin):
    """One look of a series: this look's readout and the running (valid) summaries.

    ``p_value`` is the running minimum of the always-valid p-values up to this look and
    ``abs_ci``/``rel_ci`` the running intersection of the confidence sequence: both remain
    valid whenever the experiment is stopped. ``naive_p_value`` is the fixed-horizon
    z-test p-value at this look, shown for contrast (it is *not* valid under peeking).
    """

    look: int
    label: str
    n_control: int
    n_treatment: int
    abs_lift: float | None
    rel_lift: float | None
    p_value: float | None
    p_value_look: float | None
    naive_p_value: float | None
    abs_ci: Interval | None
    rel_ci: Interval | None
    significant: bool
    status: str
    note: str


@dataclass(frozen=True)
class SequentialSeries(ResultMixin):
    """Looks in order, with the τ used throughout and the first look that crossed."""

    looks: tuple[SequentialLook, ...]
    tau: float | None
    tau_source: str
    alpha: float
    alternative: str
    first_significant_look: int | None

    @property
    def final(self) -> SequentialLook:
        return self.looks[-1]

    def to_frame(self) -> pd.DataFrame:
        """One row per look."""
        import pandas as pd

        return pd.DataFrame([look._flat_row() for look in self.looks])

    def _repr_html_(self) -> str:
        return html_table(
            [look._flat_row() for look in self.looks],
            caption=f"mSPRT series (tau={self.tau}, {self.tau_source})",
        )


def _intersect(a: Interval | None, b: Interval | None) -> Interval | None:
    """Running intersection of the confidence sequence, ``b`` the latest look's interval."""
    if a is None:
        return b
    if b is None:
        return a
    # An empty intersection can only happen with probability <= α; keep the latest look's
    # interval rather than report an impossible one.
    return a.intersect(b) or b


def _accumulate(
    total: MeanStats | RatioStats | None, increment: MeanStats | RatioStats | None
) -> MeanStats | RatioStats | None:
    """``total + increment`` of per-period sufficient statistics (``None`` adds nothing)."""
    if total is None:
        return increment
    if increment is None:
        return total
    if isinstance(total, MeanStats) and isinstance(increment, MeanStats):
        return total + increment
    if isinstance(total, RatioStats) and isinstance(increment, RatioStats):
        return total + increment
    raise TypeError(
        f"cannot add {type(increment).__name__} to {type(total).__name__}: one metric type per series"
    )


def sequential_series(
    control_looks: Sequence[MeanStats | RatioStats | None],
    treatment_looks: Sequence[MeanStats | RatioStats | None],
    *,
    metric_type: MetricType,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    cumulative: bool = True,
    cuped: bool = False,
    labels: Sequence[str] | None = None,
    tau: float | None = None,
    mde: float | None = None,
    mde_relative: float | None = None,
    power: float = 0.8,
) -> SequentialSeries:
    """mSPRT over a series of looks (for example one per day), for plots and stopping.

    ``control_looks[i]``/``treatment_looks[i]`` are the sufficient statistics at look
    ``i``: cumulative (default) or per-period increments (``cumulative=False``, summed
    here). τ is fixed once, at the first look with data when it comes from the default,
    so the mixture does not change with the data. Looks without enough data get
    ``status="not enough data"`` and do not move the running summaries.
    """
    check_alpha_alternative(alpha, alternative)
    if len(control_looks) != len(treatment_looks):
        raise ValueError("control_looks and treatment_looks must have the same length")
    if labels is not None and len(labels) != len(control_looks):
        raise ValueError("labels must have one entry per look")
    acc_c: MeanStats | RatioStats | None = None
    acc_t: MeanStats | RatioStats | None = None
    tau_value: float | None = None
    source = ""
    p_run = 1.0
    abs_run: Interval | None = None
    rel_run: Interval | None = None
    first: int | None = None
    looks: list[SequentialLook] = []
    for i, (c, t) in enumerate(zip(control_looks, treatment_looks, strict=True)):
        if cumulative:
            acc_c, acc_t = c, t
        else:
            acc_c, acc_t = _accumulate(acc_c, c), _accumulate(acc_t, t)
        label = labels[i] if labels is not None else str(i + 1)
        n_c = 0 if acc_c is None else acc_c.n
        n_t = 0 if acc_t is None else acc_t.n
        reason = ""
        diff: Difference | None = None
        if acc_c is None or acc_t is None:
            reason = "an arm has no data yet"
        else:
            try:
                diff = estimate_difference(acc_c, acc_t, metric_type=metric_type, cuped=cuped)
            except NotEnoughDataError as exc:
                reason = str(exc)
        result: SequentialResult | None = None
        if diff is not None:
            if tau_value is None:
                try:
                    tau_value, source = _resolve_tau(diff, tau, mde, mde_relative, alpha, power)
                except NotEnoughDataError as exc:
                    reason = str(exc)
            if tau_value is not None:
                result = sequential_readout(
                    diff, alpha=alpha, alternative=alternative, tau=tau_value
                )
                if result.status != OK:
                    reason, result = result.note, None
        if result is None or diff is None:
            looks.append(
                SequentialLook(
                    look=i + 1, label=label, n_control=n_c, n_treatment=n_t,
                    abs_lift=None, rel_lift=None,
                    p_value=p_run if looks else None, p_value_look=None, naive_p_value=None,
                    abs_ci=abs_run, rel_ci=rel_run, significant=p_run < alpha,
                    status=NOT_ENOUGH_DATA, note=reason,
                )
            )  # fmt: skip
            continue
        assert result.p_value is not None
        p_run = min(p_run, result.p_value)
        abs_run = _intersect(abs_run, result.abs_ci)
        if result.rel_ci_bounded:
            rel_run = _intersect(rel_run, result.rel_ci)
        z = diff.abs_diff / diff.se_abs
        if alternative == "two-sided":
            naive = min(1.0, 2.0 * float(sps.norm.sf(abs(z))))
        else:
            naive = float(sps.norm.sf(z if alternative == "larger" else -z))
        significant = p_run < alpha
        if significant and first is None:
            first = i + 1
        looks.append(
            SequentialLook(
                look=i + 1, label=label, n_control=n_c, n_treatment=n_t,
                abs_lift=diff.abs_diff, rel_lift=result.rel_lift,
                p_value=p_run, p_value_look=result.p_value, naive_p_value=naive,
                abs_ci=abs_run, rel_ci=rel_run, significant=significant,
                status=OK, note="",
            )
        )  # fmt: skip
    return SequentialSeries(
        looks=tuple(looks),
        tau=tau_value,
        tau_source=source,
        alpha=alpha,
        alternative=alternative,
        first_significant_look=first,
    )


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class SequentialPlan(ResultMixin):
    """Sample size for monitoring with the mSPRT, next to the fixed-horizon plan.

    ``n_per_arm``/``n_total`` are the *maximum* sample (the horizon) at which the
    probability of crossing the mSPRT boundary at one of ``looks`` equally spaced looks
    reaches ``power`` when the true effect is the plan's MDE. ``inflation`` is
    ``n_total / fixed_n_total``. ``expected_n_total_at_mde`` is the average sample used
    when stopping at the first crossing (the experiment ends early when the effect is
    real); ``achieved_power`` is the simulated power at the rounded sizes.
    """

    alpha: float
    alternative: str
    power: float
    achieved_power: float
    looks: int
    tau: float
    mde_abs: float
    fixed_n_per_arm: tuple[int, ...]
    fixed_n_total: int
    n_per_arm: tuple[int, ...]
    n_total: int
    inflation: float
    expected_n_total_at_mde: float
    duration_days: int | None
    expected_days_at_mde: float | None
    sims: int
    seed: int
    note: str


def _crossing(
    factor: float,
    normals: np.ndarray,
    delta: float,
    v_n: float,
    tau: float,
    alpha: float,
    alternative: str,
) -> tuple[np.ndarray, np.ndarray]:
    """First crossing look per simulated path (``looks`` if none) and whether it crossed.

    Brownian approximation of the cumulative estimate: at information fraction
    ``t_k = k/K`` of a horizon with variance ``V_N/f``, ``Z_k = δ·√(f·t_k/V_N) + B(t_k)/√t_k``.
    """
    k = normals.shape[1]
    t = np.arange(1, k + 1) / k
    brownian = np.cumsum(normals, axis=1) * math.sqrt(1.0 / k)
    z = delta * np.sqrt(factor * t / v_n) + brownian / np.sqrt(t)
    rho = tau * tau * factor * t / v_n
    crossed = log_mixture_lr(z, rho[None, :], alternative) >= math.log(1.0 / alpha)
    any_cross = np.asarray(crossed.any(axis=1), dtype=bool)
    first = np.where(any_cross, crossed.argmax(axis=1), k - 1)
    return first, any_cross


def plan_sequential(
    plan: Any,
    *,
    looks: int = 14,
    tau: float | None = None,
    sims: int = 20_000,
    seed: int = 20240601,
) -> SequentialPlan:
    """Inflate a fixed-horizon :class:`~abkit.stats.planning.PowerPlan` for mSPRT monitoring.

    Uses the plan's MDE, per-arm sds and allocation (first treatment arm), its
    per-comparison α and alternative, and τ from :func:`tau_for_mde` unless given. The
    power of the look sequence is computed on ``sims`` Brownian paths with a fixed
    ``seed`` (common random numbers, so the search over the inflation factor is smooth
    and the answer reproducible); Monte Carlo error of the power is about
    ``√(p(1-p)/sims)`` (0.003 at the defaults).
    """
    if looks < 1:
        raise ValueError("looks must be >= 1")
    alpha = plan.alpha_per_comparison
    alternative = plan.alternative
    target = plan.power if plan.solved_for != "power" else plan.achieved_power
    delta = plan.mde_abs
    n_c, n_t = plan.n_per_arm[0], plan.n_per_arm[1]
    v_n = plan.baseline_sd**2 / n_c + plan.treatment_sd**2 / n_t
    tau_value = float(tau) if tau is not None else tau_for_mde(delta, alpha, target)
    normals = np.random.default_rng(seed).standard_normal((sims, looks))

    def power_at(f: float) -> float:
        return float(_crossing(f, normals, delta, v_n, tau_value, alpha, alternative)[1].mean())

    hi = 1.0
    while power_at(hi) < target:
        hi *= 1.5
        if hi > 1e4:
            raise ValueError("the mSPRT cannot reach this power; raise tau or lower the power")
    lo = hi / 1.5 if hi > 1.0 else 0.05
    while power_at(lo) >= target and lo > 1e-3:
        lo /= 1.5
    for _ in range(40):  # bisection on a monotone step function
        mid = 0.5 * (lo + hi)
        if power_at(mid) >= target:
            hi = mid
        else:
            lo = mid
    factor = hi
    n_per_arm = tuple(math.ceil(n * factor - 1e-9) for n in plan.n_per_arm)
    n_total = int(sum(n_per_arm))
    exact = n_total / plan.n_total
    first, crossed = _crossing(exact, normals, delta, v_n, tau_value, alpha, alternative)
    achieved = float(crossed.mean())
    expected_n = float(np.mean((first + 1) / looks) * n_total)
    days = expected = None
    if plan.daily_traffic is not None:
        per_day = plan.daily_traffic * plan.traffic_fraction
        days = max(1, math.ceil(n_total / per_day - 1e-9))
        expected = expected_n / per_day
    return SequentialPlan(
        alpha=alpha,
        alternative=alternative,
        power=target,
        achieved_power=achieved,
        looks=looks,
        tau=tau_value,
        mde_abs=delta,
        fixed_n_per_arm=tuple(plan.n_per_arm),
        fixed_n_total=plan.n_total,
        n_per_arm=n_per_arm,
        n_total=n_total,
        inflation=exact,
        expected_n_total_at_mde=expected_n,
        duration_days=days,
        expected_days_at_mde=expected,
        sims=sims,
        seed=seed,
        note=f"mSPRT with {looks} equally spaced looks; power by simulation",
    )
