"""What a report shows, as plain frozen data: the single seam between analysis and HTML.

:func:`abkit.report.adapt.from_analysis` fills a :class:`ReportModel` from an
``AnalysisResult``; :mod:`abkit.report.sections` turns the model into HTML and plots. The
model is embedded in every report as JSON (``<pre class="abkit-data">``), so tests and
downstream tools can read exactly the numbers that were displayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from abkit.stats._render import ResultMixin

VERDICTS = ("ship", "roll back", "keep running", "no detectable effect")
GUARDRAIL_STATUSES = ("pass", "fail", "inconclusive")


@dataclass(frozen=True)
class MetricRow(ResultMixin):
    """One metric for one treatment arm against control, as displayed in the scorecard."""

    metric: str
    variant: str
    role: str  # "primary" | "secondary" | "guardrail"
    metric_type: str  # "proportion" | "mean" | "ratio" | ...
    control_mean: float | None
    treatment_mean: float | None
    abs_lift: float | None
    abs_low: float | None
    abs_high: float | None
    rel_lift: float | None
    rel_low: float | None
    rel_high: float | None
    p_value: float | None = None
    prob_beat_control: float | None = None
    significant: bool = False
    higher_is_better: bool = True
    guardrail_status: str | None = None  # pass | fail | inconclusive, guardrails only
    n_control: int = 0
    n_treatment: int = 0
    status: str = "ok"
    note: str = ""
    label: str = ""
    test: str = ""  # the statistical test that produced the p-value

    @property
    def display_name(self) -> str:
        return self.label or self.metric

    @property
    def outcome(self) -> str:
        """better | worse | neutral | unknown: the direction that matters to the business."""
        if self.status != "ok" or (self.rel_lift is None and self.abs_lift is None):
            return "unknown"
        if not self.significant:
            return "neutral"
        lift = self.abs_lift if self.abs_lift is not None else self.rel_lift
        good = (lift > 0) == self.higher_is_better
        return "better" if good else "worse"


@dataclass(frozen=True)
class Impact(ResultMixin):
    """Projected business impact of shipping: a change per period with its interval."""

    metric: str
    period: str  # "day" | "week" | "month" | "year" | "experiment"
    estimate: float | None
    low: float | None
    high: float | None
    unit: str = ""  # currency code ("USD") or a noun ("orders")
    is_currency: bool = False
    assumption: str = ""


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
    traffic: float = 1.0
    status: str = ""
    tags: tuple[str, ...] = ()
    variants: tuple[VariantFact, ...] = ()


@dataclass(frozen=True)
class Decision(ResultMixin):
    verdict: str
    reason: str
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class DailySeries(ResultMixin):
    """Cumulative relative lift of the primary metric by day (ISO dates)."""

    metric: str
    variant: str
    dates: tuple[str, ...]
    rel_lift: tuple[float | None, ...]
    low: tuple[float | None, ...]
    high: tuple[float | None, ...]


@dataclass(frozen=True)
class ReportModel(ResultMixin):
    """Everything the executive report displays, in display order."""

    facts: Facts
    decision: Decision
    metrics: tuple[MetricRow, ...]
    quality: Quality
    impact: tuple[Impact, ...] = ()
    daily: tuple[DailySeries, ...] = ()
    method: str = "fixed"
    alpha: float = 0.05
    correction: str | None = None
    cuped: bool = False
    generated_at: str = ""
    abkit_version: str = ""

    def _repr_html_(self) -> str:
        """In a notebook: the banner, the headline and the scorecard, as in the report."""
        from abkit.report import sections

        return "".join(
            block.html
            for block in (
                sections.decision_banner(self),
                sections.headline(self),
                sections.scorecard(self),
            )
        )

    @property
    def primary(self) -> MetricRow | None:
        """The primary metric of the first treatment arm (the headline)."""
        for row in self.metrics:
            if row.role == "primary":
                return row
        return self.metrics[0] if self.metrics else None
