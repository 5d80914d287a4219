"""Data-quality checks reported before any lift.

* **Sample ratio mismatch**: chi-square test of analysed units per arm against the
  experiment's configured weights (``Experiment.effective_weights``, the exact hash-space
  shares); flagged at ``p < 0.001`` (:func:`abkit.stats.srm.srm_test`). An SRM means the
  arms differ by more than chance in who got logged, so the readout is not trustworthy.
* **Multiple exposure**: units exposed to two or more variants are excluded from every
  metric (no arm can claim their outcome) and counted per variant of first exposure.
  Repeated exposures to the *same* variant are normal and only the first one counts.
* **Pre-period balance**: for each metric with a CUPED covariate, Welch's t-test of the
  pre-exposure means between control and each treatment arm. Randomisation makes the
  pre-period independent of the arm, so ``p < 0.001`` points at a broken assignment or a
  logging change coinciding with the experiment (a warning, not a veto).
* **Events outside the window**: events of the metrics' types from analysed units that
  fall before first exposure or after the metric window (or the experiment's end) are
  excluded from the metric and counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from abkit.results import ResultMixin, html_table
from abkit.stats.srm import SRMResult, srm_test
from abkit.stats.sufficient import MeanStats

BALANCE_THRESHOLD = 0.001
MULTIPLE_EXPOSURE_WARN = 0.01  # share of units above which contamination is worth a look


@dataclass(frozen=True)
class MultipleExposure(ResultMixin):
    """Units seen in more than one variant (excluded from the analysis)."""

    units: int  # exposed units, every variant
    multiple: int  # of which seen in two or more variants
    share: float
    by_variant: dict[str, int]  # by smallest variant name seen (a stable label)
    handling: str = "excluded from every metric; counted here"


@dataclass(frozen=True)
class BalanceCheck(ResultMixin):
    """Pre-period mean of a metric in control and one treatment arm."""

    metric: str
    variant: str
    control_mean: float | None
    treatment_mean: float | None
    p_value: float | None
    imbalanced: bool


@dataclass(frozen=True)
class ExcludedEvents(ResultMixin):
    """Events of a metric's types, from analysed units, that fell outside its window."""

    metric: str
    before_exposure: int
    after_window: int


@dataclass(frozen=True)
class QualityReport(ResultMixin):
    """Every check, and ``warnings`` in words (empty when all is well)."""

    srm: SRMResult
    multiple_exposure: MultipleExposure
    balance: tuple[BalanceCheck, ...]
    excluded_events: tuple[ExcludedEvents, ...]
    unknown_variants: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def srm_detected(self) -> bool:
        return self.srm.mismatch

    @property
    def ok(self) -> bool:
        return not self.warnings

    def rows(self) -> list[dict[str, object]]:
        """One flat row per check, for tables and CSV."""
        srm = self.srm
        out: list[dict[str, object]] = [
            {
                "check": "sample ratio mismatch",
                "value": getattr(srm, "p_value", None),
                "flag": self.srm_detected,
                "detail": f"observed {dict(zip(srm.variants, srm.observed, strict=True))}, "
                f"expected {dict(zip(srm.variants, (round(e, 1) for e in srm.expected), strict=True))}",
            },
            {
                "check": "multiple exposure",
                "value": self.multiple_exposure.share,
                "flag": self.multiple_exposure.share > MULTIPLE_EXPOSURE_WARN,
                "detail": f"{self.multiple_exposure.multiple} of {self.multiple_exposure.units} "
                "units saw more than one variant (excluded)",
            },
        ]
        for b in self.balance:
            out.append(
                {
                    "check": f"pre-period balance: {b.metric} ({b.variant})",
                    "value": b.p_value,
                    "flag": b.imbalanced,
                    "detail": f"control {b.control_mean}, treatment {b.treatment_mean}",
                }
            )
        for e in self.excluded_events:
            out.append(
                {
                    "check": f"events outside window: {e.metric}",
                    "value": e.before_exposure + e.after_window,
                    "flag": False,
                    "detail": f"{e.before_exposure} before first exposure, "
                    f"{e.after_window} after the window (excluded)",
                }
            )
        return out

    def _repr_html_(self) -> str:
        return html_table(self.rows(), caption="Data quality")


def srm_check(
    units: Mapping[str, int], weights: Mapping[str, float], *, threshold: float = 0.001
) -> SRMResult:
    """SRM on analysed units against configured weights (arms with no unit count as 0)."""

    counts = {name: int(units.get(name, 0)) for name in weights}
    return srm_test(counts, dict(weights), threshold=threshold)


def balance_checks(
    pre_stats: Mapping[str, Mapping[str, MeanStats]],
    control: str,
    *,
    threshold: float = BALANCE_THRESHOLD,
) -> tuple[BalanceCheck, ...]:
    """Welch t-test of pre-period covariate means (metric -> variant -> MeanStats)."""
    from abkit.stats.readout import compare

    out = []
    for metric, arms in pre_stats.items():
        if control not in arms:
            continue
        base = arms[control]
        for variant, stats in arms.items():
            if variant == control or not stats.has_covariate:
                continue
            c = MeanStats(n=base.n, sum=base.cov_sum or 0.0, sum_sq=base.cov_sum_sq or 0.0)
            t = MeanStats(n=stats.n, sum=stats.cov_sum or 0.0, sum_sq=stats.cov_sum_sq or 0.0)
            result = compare(c, t, metric_type="mean")
            p = result.p_value
            out.append(
                BalanceCheck(
                    metric=metric,
                    variant=variant,
                    control_mean=result.control_mean,
                    treatment_mean=result.treatment_mean,
                    p_value=p,
                    imbalanced=p is not None and p < threshold,
                )
            )
    return tuple(out)


def build_quality(
    *,
    srm: SRMResult,
    multiple: MultipleExposure,
    balance: Sequence[BalanceCheck],
    excluded: Sequence[ExcludedEvents],
    unknown_variants: Sequence[str] = (),
) -> QualityReport:
    """Assemble the report and phrase its warnings."""
    warnings: list[str] = []
    if getattr(srm, "mismatch", False):
        observed = dict(zip(srm.variants, srm.observed, strict=True))
        expected = {v: round(e) for v, e in zip(srm.variants, srm.expected, strict=True)}
        warnings.append(
            f"sample ratio mismatch (p = {srm.p_value:.2g}): observed {observed}, "
            f"expected about {expected}; units are being lost or added unevenly, so the "
            "lifts below are not trustworthy until the cause is found"
        )
    if multiple.share > MULTIPLE_EXPOSURE_WARN:
        warnings.append(
            f"{multiple.multiple} units ({multiple.share:.1%}) were exposed to more than one "
            "variant and were excluded; check that the variant is sticky per unit"
        )
    for b in balance:
        if b.imbalanced:
            warnings.append(
                f"pre-period imbalance in {b.metric} between control and {b.variant} "
                f"(p = {b.p_value:.2g}): the arms differed before the experiment"
            )
    if unknown_variants:
        warnings.append(
            f"exposures to variants not in the configuration were ignored: "
            f"{', '.join(unknown_variants)}"
        )
    return QualityReport(
        srm=srm,
        multiple_exposure=multiple,
        balance=tuple(balance),
        excluded_events=tuple(excluded),
        unknown_variants=tuple(unknown_variants),
        warnings=tuple(warnings),
    )
