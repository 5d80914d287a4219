"""What a report shows, as plain frozen data: the single seam between analysis and HTML.

:func:`abkit.report.adapt.from_analysis` fills a :class:`ReportModel` from an
``AnalysisResult``; the section modules in :mod:`abkit.report.sections` turn the model into
HTML and plots (this module imports none of them). The model is embedded in every report
as JSON (``<pre class="abkit-data">``), so tests, the index page and downstream tools can
read exactly the numbers that were displayed.

Intervals are :class:`abkit.results.Interval` (``[lower, upper]`` in the JSON); every
vocabulary comes from :mod:`abkit.vocabulary`. The report adds one state to the analysis'
verdicts, ``"cannot finish"``: a test told to keep running whose planned sample lies beyond
the report's horizon (default eight weeks from the first exposure).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from abkit.results import Interval, ResultMixin
from abkit.vocabulary import GuardrailStatus, Verdict

# The report's headline state: the analysis' verdict, or "cannot finish" (module docstring).
ReportState = Literal["ship", "roll back", "keep running", "no detectable effect", "cannot finish"]
REPORT_STATES: tuple[ReportState, ...] = get_args(ReportState)
# better | worse | neutral | unknown: the direction that matters to the business.
Outcome = Literal["better", "worse", "neutral", "unknown"]

DEFAULT_HORIZON_DAYS = 56.0


@dataclass(frozen=True)
class MetricRow(ResultMixin):
    """One metric for one treatment arm against control, as displayed in the scorecard.

    ``control_mean``/``treatment_mean`` are the raw arm means; ``abs_lift``/``rel_lift``
    and their intervals are the analysis' estimate of the effect (CUPED-adjusted when
    ``cuped``). ``interval_consistent`` is False when the interval shown excludes zero
    while the (multiplicity-adjusted) significance says otherwise, or the reverse.
    """

    metric: str
    variant: str
    role: str  # abkit.vocabulary.Role
    metric_type: str  # abkit.vocabulary.MetricType
    label: str
    control_mean: float | None
    treatment_mean: float | None
    abs_lift: float | None
    abs_ci: Interval | None
    rel_lift: float | None
    rel_ci: Interval | None
    unit: str = "number"  # abkit.vocabulary.MetricUnit
    currency: str = ""  # ISO code of a money metric; "" when not recorded
    p_value: float | None = None  # adjusted for multiplicity when a correction applies
    prob_beat_control: float | None = None
    significant: bool = False
    higher_is_better: bool = True
    guardrail_status: GuardrailStatus | None = None
    interval_adjusted: bool = False  # the interval accounts for the correction too
    n_control: int = 0
    n_treatment: int = 0
    status: str = "ok"
    note: str = ""
    test: str = ""  # the statistical test that produced the p-value
    cuped: bool = False
    variance_reduction: float | None = None  # share of variance CUPED/regression removed

    @property
    def display_name(self) -> str:
        return self.label or self.metric

    @property
    def outcome(self) -> Outcome:
        """better | worse | neutral | unknown: the direction that matters to the business."""
        if self.status != "ok" or (self.rel_lift is None and self.abs_lift is None):
            return "unknown"
        if not self.significant:
            return "neutral"
        lift = self.abs_lift if self.abs_lift is not None else self.rel_lift
        good = (lift is not None and lift > 0) == self.higher_is_better
        return "better" if good else "worse"

    @property
    def interval_consistent(self) -> bool:
        """The relative interval excludes zero exactly when the row is significant."""
        if self.rel_ci is None or self.status != "ok":
            return True
        return self.rel_ci.contains(0.0) != self.significant


@dataclass(frozen=True)
class Impact(ResultMixin):
    """Projected business impact of shipping: a change per period with its interval."""

    metric: str
    variant: str
    period: str  # "day" | "week" | "month" | "quarter" | "year"
    estimate: float | None
    interval: Interval | None
    unit: str = ""  # a noun ("orders") when not money
    currency: str = ""
    is_money: bool = False
    eligible_units: float | None = None
    assumption: str = ""


@dataclass(frozen=True)
class Harm(ResultMixin):
    """What a harmed guardrail costs per period if the variant shipped to everyone.

    ``per_period`` is the change in the guardrail's own unit (e.g. client errors) over
    ``users`` eligible users per period; ``money`` prices it when a value per unit of the
    metric is declared (or the metric is money).
    """

    metric: str
    label: str
    variant: str
    period: str
    rel_lift: float | None
    rel_ci: Interval | None
    abs_lift: float | None
    unit: str
    metric_type: str = "mean"
    per_period: float | None = None
    per_period_ci: Interval | None = None
    users: float | None = None
    money: float | None = None
    money_ci: Interval | None = None
    currency: str = ""


@dataclass(frozen=True)
class QualityCheck(ResultMixin):
    """One data-quality check with a plain-words result."""

    name: str
    status: str  # pass | fail | warn
    detail: str
    p_value: float | None = None


@dataclass(frozen=True)
class Quality(ResultMixin):
    """Sample ratio, balance and sample size collected against needed."""

    counts: dict[str, int]
    expected_shares: dict[str, float]
    srm_p_value: float | None
    srm_ok: bool
    checks: tuple[QualityCheck, ...] = ()
    sample_collected: int | None = None
    sample_needed: int | None = None
    sample_target: str = ""  # what the needed sample detects, in words
    days_remaining: float | None = None
    # the plan without CUPED/regression adjustment, and the R² it removes (None: not used)
    r_squared: float | None = None
    sample_needed_without_cuped: int | None = None
    days_remaining_without_cuped: float | None = None


@dataclass(frozen=True)
class VariantFact(ResultMixin):
    name: str
    weight: float
    payload: dict[str, Any] = field(default_factory=dict)
    is_control: bool = False


@dataclass(frozen=True)
class Facts(ResultMixin):
    """The experiment's descriptive facts (all user-provided text, escaped on display)."""

    key: str
    description: str = ""
    hypothesis: str = ""
    owner: str = ""
    start: str | None = None
    end: str | None = None
    first_exposure: str | None = None
    last_exposure: str | None = None
    since: str | None = None  # the readout's window, when it was limited (as-of readout)
    until: str | None = None
    days: float | None = None  # days of data so far
    units_per_day: float | None = None
    traffic: float = 1.0
    status: str = ""
    tags: tuple[str, ...] = ()
    variants: tuple[VariantFact, ...] = ()


@dataclass(frozen=True)
class Decision(ResultMixin):
    """The recommendation in plain words, and the analysis' technical reasons.

    ``headline`` and ``why`` are what a product manager reads (no code, no test names,
    rounded figures); ``options`` the choices when the test cannot finish; ``technical``
    the analysis' own reasons, shown in the methodology section.
    """

    verdict: Verdict
    state: ReportState
    headline: str
    why: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    technical: tuple[str, ...] = ()
    basis: str = ""
    decided_by: tuple[str, str] | None = None
    trustworthy: bool = True


@dataclass(frozen=True)
class DailySeries(ResultMixin):
    """Cumulative relative lift of one metric by day (ISO dates)."""

    metric: str
    variant: str
    dates: tuple[str, ...]
    rel_lift: tuple[float | None, ...]
    low: tuple[float | None, ...]
    high: tuple[float | None, ...]


@dataclass(frozen=True)
class SegmentRow(ResultMixin):
    """One segment value's readout of one metric (executive and deep-dive reports)."""

    segment: str
    value: str
    metric: str
    label: str
    variant: str
    n_control: int
    n_treatment: int
    rel_lift: float | None
    rel_ci: Interval | None
    p_value: float | None
    significant: bool
    outcome: Outcome = "unknown"


@dataclass(frozen=True)
class ControllerAction(ResultMixin):
    """One entry of the experiment's audit trail, as the report shows it.

    ``traffic`` is the share of eligible units after the action when it changed, ``status``
    the new status when it changed; ``reason`` is the controller's (or person's) own words.
    """

    at: str
    action: str
    actor: str
    reason: str
    traffic: float | None = None
    status: str | None = None
    winner: str | None = None


@dataclass(frozen=True)
class ReportModel(ResultMixin):
    """Everything the executive report displays, in display order."""

    facts: Facts
    decision: Decision
    metrics: tuple[MetricRow, ...]
    quality: Quality
    impact: tuple[Impact, ...] = ()
    harm: tuple[Harm, ...] = ()
    daily: tuple[DailySeries, ...] = ()
    segments: tuple[SegmentRow, ...] = ()
    segments_requested: tuple[str, ...] = ()
    actions: tuple[ControllerAction, ...] = ()
    method: str = "fixed"
    alpha: float = 0.05
    correction: str | None = None
    cuped: bool = False
    horizon_days: float = DEFAULT_HORIZON_DAYS
    generated_at: str = ""
    abkit_version: str = ""

    @property
    def primary(self) -> MetricRow | None:
        """The primary metric of the first treatment arm (the headline)."""
        for row in self.metrics:
            if row.role == "primary":
                return row
        return self.metrics[0] if self.metrics else None

    @property
    def decisive(self) -> MetricRow | None:
        """The row that decided the verdict (the harmed guardrail of a roll-back), else
        the primary metric's row of the winning or first arm."""
        if self.decision.decided_by is not None:
            metric, variant = self.decision.decided_by
            for row in self.metrics:
                if row.metric == metric and row.variant == variant:
                    return row
        return self.primary
