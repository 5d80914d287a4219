"""What an analysis returns: :class:`AnalysisResult` and the facts it carries.

The result is self-contained: the resolved metric definitions (:class:`MetricInfo`), the
experiment's configuration and readout window (:class:`ExperimentFacts`), the sample plan
(:class:`SamplePlan`), the guardrail checks, the decision, the impact and the daily series.
A report adapts it without opening the store, reading metric files or re-planning.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from abkit.analysis.decision import Decision, GuardrailCheck
from abkit.analysis.impact import Impact
from abkit.analysis.quality import QualityReport
from abkit.metrics.definitions import Metric
from abkit.results import Interval, ResultMixin, html_table, json_safe
from abkit.vocabulary import Direction, MetricType, MetricUnit, Role

if TYPE_CHECKING:
    import pandas as pd

# The columns that say which readout a row is; the other figures go to details_frame().
IDENTIFYING = ("metric", "variant", "role", "type", "unit")
HEADLINE = (
    "control_mean",
    "treatment_mean",
    "abs_lift",
    "rel_lift",
    "rel_ci_lower",
    "rel_ci_upper",
    "p_value",
    "p_value_adjusted",
    "significant",
    "status",
)
# Significant digits of the figures shown in a notebook (the data keep full precision).
DISPLAY_DIGITS = 4


@dataclass(frozen=True)
class MetricInfo(ResultMixin):
    """A metric as the analysis resolved it (role, direction, unit, the cap it applied)."""

    name: str
    type: MetricType
    role: Role
    direction: Direction
    unit: MetricUnit
    currency: str
    margin: float | None
    mde: float | None
    description: str
    definition: dict[str, Any]
    cap: float | None = None  # the cap value applied (absolute or the percentile's value)

    @classmethod
    def of(cls, metric: Metric, *, cap: float | None, currency: str = "") -> MetricInfo:
        return cls(
            name=metric.name,
            type=metric.type,
            role=metric.role,
            direction=metric.direction,
            unit=metric.unit,
            currency=metric.currency or currency,
            margin=metric.margin,
            mde=metric.mde,
            description=metric.description,
            definition=metric.to_dict(),
            cap=metric.cap if metric.cap is not None else cap,
        )


@dataclass(frozen=True)
class ExperimentFacts(ResultMixin):
    """What was analysed: the configuration, the database, the exposure period, the window."""

    key: str
    control: str
    variants: tuple[str, ...]
    weights: dict[str, float]
    traffic: float
    registered: bool  # False: no configuration found, equal weights assumed for SRM
    dialect: str
    units: dict[str, int]  # analysed units per arm
    first_exposure: str | None
    last_exposure: str | None
    days: float
    units_per_day: float | None
    description: str = ""
    hypothesis: str = ""
    owner: str = ""
    status: str = ""
    start: str | None = None  # the configured start and end (ISO-8601)
    end: str | None = None
    tags: tuple[str, ...] = ()
    payloads: dict[str, Any] = field(default_factory=dict)
    namespace: str | None = None
    spec_version: str | None = None
    since: str | None = None  # the readout window: units first exposed at or after since,
    until: str | None = None  # data before until (exclusive); None: unbounded
    source: str = ""
    # How the per-unit data was obtained: "" (no cache), "incremental (N new events, M new
    # exposures)", "full rebuild: <reason>", "full analysis: <reason>".
    refresh: str = ""


@dataclass(frozen=True)
class SamplePlan(ResultMixin):
    """Units (all arms) to detect the primary metric's ``mde`` with ``power`` at ``alpha``.

    With CUPED or regression adjustment applied to the primary metric, ``n_total`` and
    ``sample_needed`` use the adjusted variance ``σ²(1 - R²)`` (``r_squared``: the share of
    variance the covariates explain in the control arm) and the ``*_without_cuped`` fields
    state the same plan without the adjustment; otherwise those are ``None``.
    """

    metric: str
    n_total: int | None
    mde: float
    power: float
    alpha: float
    target: str
    units_collected: int
    sample_needed: int | None
    days_needed: float | None
    information_fraction: float | None
    r_squared: float | None = None
    n_total_without_cuped: int | None = None
    sample_needed_without_cuped: int | None = None
    days_needed_without_cuped: float | None = None
    information_fraction_without_cuped: float | None = None


@dataclass(frozen=True)
class SegmentResult(ResultMixin):
    """One metric in one segment value for one treatment arm."""

    segment: str
    value: str
    result: Any  # LiftResult

    def _flat_row(self) -> dict[str, Any]:
        row = {"segment": self.segment, "segment_value": self.value}
        row.update(self.result._flat_row())
        return row


@dataclass(frozen=True)
class DailyRow(ResultMixin):
    """Cumulative value of a metric per arm up to a day (UTC day of first exposure)."""

    date: str
    metric: str
    variant: str
    n: int
    value: float | None
    rel_lift: float | None = None
    rel_ci_lower: float | None = None
    rel_ci_upper: float | None = None


def _lift_dict(result: Any) -> dict[str, Any]:
    out: dict[str, Any] = result.to_dict()
    out.pop("details", None)
    return out


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2%}"


def _ci_text(ci: Interval | None) -> str:
    if ci is None:
        return "-"
    lo, hi = ci
    return f"[{_pct(lo)}, {_pct(hi)}]"


@dataclass(frozen=True)
class AnalysisResult(ResultMixin):
    """The full readout; ``to_frame()`` gives one row per metric and treatment arm."""

    experiment: ExperimentFacts
    quality: QualityReport
    metrics: tuple[Any, ...]  # LiftResult per (metric, treatment arm), guardrails included
    guardrails: tuple[GuardrailCheck, ...]
    segments: tuple[SegmentResult, ...]
    decision: Decision
    impact: Impact | None
    daily: tuple[DailyRow, ...]
    primary: str
    roles: dict[str, str]  # metric -> primary | secondary | guardrail
    arm_stats: dict[str, dict[str, Any]]  # metric -> variant -> sufficient statistics
    method: str = "fixed"
    alpha: float = 0.05
    correction: str = "holm"
    cuped: bool = True
    metric_defs: tuple[MetricInfo, ...] = ()
    plan: SamplePlan | None = None

    def metric_info(self, name: str) -> MetricInfo:
        """The resolved definition of metric ``name`` (``KeyError`` when not analysed)."""
        for info in self.metric_defs:
            if info.name == name:
                return info
        raise KeyError(f"no metric {name!r} in this analysis")

    # ------------------------------------------------------------------ views
    def _rows(self) -> list[dict[str, Any]]:
        infos = {m.name: m for m in self.metric_defs}
        rows = []
        for r in self.metrics:
            info = infos.get(r.metric)
            flat = r._flat_row()
            rows.append(
                {
                    "metric": r.metric,
                    "variant": r.variant,
                    "role": self.roles.get(r.metric, "secondary"),
                    "type": info.type if info else None,
                    "unit": info.unit if info else None,
                    **{k: v for k, v in flat.items() if k not in ("metric", "variant")},
                }
            )
        return rows

    def to_frame(self) -> pd.DataFrame:
        """One row per metric and treatment arm: identifying columns, then the headline
        figures (``details_frame()`` has the rest)."""
        import pandas as pd

        frame = pd.DataFrame(self._rows())
        keep = [c for c in (*IDENTIFYING, *HEADLINE) if c in frame.columns]
        return frame[keep]

    def details_frame(self) -> pd.DataFrame:
        """The other columns of each readout, keyed by ``metric`` and ``variant``."""
        import pandas as pd

        frame = pd.DataFrame(self._rows())
        skip = {*IDENTIFYING, *HEADLINE} - {"metric", "variant"}
        return frame[[c for c in frame.columns if c not in skip]]

    def segments_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([s._flat_row() for s in self.segments])

    def daily_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([json_safe(d) for d in self.daily])

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-safe (non-finite floats become ``null``)."""
        out: dict[str, Any] = json_safe(
            {
                "experiment": self.experiment,
                "primary": self.primary,
                "method": self.method,
                "alpha": self.alpha,
                "correction": self.correction,
                "cuped": self.cuped,
                "decision": self.decision.to_dict(),
                "plan": self.plan,
                "metric_defs": self.metric_defs,
                "quality": {
                    "srm": self.quality.srm,
                    "multiple_exposure": self.quality.multiple_exposure,
                    "balance": self.quality.balance,
                    "excluded_events": self.quality.excluded_events,
                    "unknown_variants": self.quality.unknown_variants,
                    "warnings": self.quality.warnings,
                },
                "metrics": [
                    {"role": self.roles.get(r.metric), **_lift_dict(r)} for r in self.metrics
                ],
                "guardrails": self.guardrails,
                "segments": [
                    {"segment": s.segment, "value": s.value, **_lift_dict(s.result)}
                    for s in self.segments
                ],
                "impact": self.impact,
                "daily": self.daily,
                "arm_stats": self.arm_stats,
            }
        )
        return out

    def summary(self) -> str:
        """A plain-text readout (what ``abkit analyze --format table`` prints)."""
        e = self.experiment
        window = ""
        if e.since or e.until:
            window = f"; readout window {e.since or 'start'} to {e.until or 'now'}"
        lines = [
            f"Experiment {e.key}: {sum(e.units.values()):,} units "
            f"({', '.join(f'{v} {n:,}' for v, n in e.units.items())}), "
            f"{e.first_exposure or '-'} to {e.last_exposure or '-'}{window}",
            "",
            f"DECISION: {self.decision.verdict.upper()}"
            + (f" ({self.decision.winner})" if self.decision.winner else ""),
        ]
        lines += [f"  - {r}" for r in self.decision.reasons]
        lines += ["", "Data quality:"]
        if self.quality.warnings:
            lines += [f"  ! {w}" for w in self.quality.warnings]
        else:
            lines.append("  all checks passed")
        srm = self.quality.srm
        lines.append(
            f"  SRM p = {_fmt(getattr(srm, 'p_value', None))}; "
            f"multiple-exposure units excluded: {self.quality.multiple_exposure.multiple}"
        )
        lines += ["", "Metrics:"]
        header = (
            "metric",
            "role",
            "variant",
            "control",
            "treatment",
            "rel lift",
            "CI",
            "p",
            "p adj",
        )
        table: list[tuple[str, ...]] = [header]
        for r in self.metrics:
            table.append(
                (
                    r.metric,
                    self.roles.get(r.metric, ""),
                    r.variant,
                    _fmt(r.control_mean),
                    _fmt(r.treatment_mean),
                    _pct(r.rel_lift),
                    _ci_text(r.rel_ci),
                    _fmt(r.p_value),
                    _fmt(r.p_value_adjusted),
                )
            )
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if self.guardrails:
            lines += ["", "Guardrails:"]
            lines += [f"  [{g.status}] {g.reason}" for g in self.guardrails]
        if self.segments:
            lines += ["", "Segments (primary metric and guardrails, corrected per dimension):"]
            for seg in self.segments:
                r = seg.result
                lines.append(
                    f"  {seg.segment}={seg.value}  {r.metric}  {r.variant}  {_pct(r.rel_lift)}  "
                    + _ci_text(r.rel_ci)
                    + f"  p adj {_fmt(r.p_value_adjusted)}"
                )
        if self.impact is not None:
            lines += ["", "Business impact:", "  " + self.impact.sentence()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = self.experiment
        d = self.decision
        parts = [
            f"<h3>Experiment {html.escape(e.key)}</h3>",
            f"<p><strong>Decision: {html.escape(d.verdict)}"
            + (f" ({html.escape(d.winner)})" if d.winner else "")
            + "</strong></p><ul>"
            + "".join(f"<li>{html.escape(r)}</li>" for r in d.reasons)
            + "</ul>",
        ]
        if e.since or e.until:
            parts.append(
                f"<p>Readout window: {html.escape(e.since or 'start')} to "
                f"{html.escape(e.until or 'now')}</p>"
            )
        if self.quality.warnings:
            parts.append(
                "<p><strong>Data quality warnings</strong></p><ul>"
                + "".join(f"<li>{html.escape(w)}</li>" for w in self.quality.warnings)
                + "</ul>"
            )
        parts.append(html_table(self.quality.rows(), caption="Data quality"))
        keep = ("metric", "variant", "role", *HEADLINE)
        rows = [_rounded({k: row.get(k) for k in keep}) for row in self._rows()]
        parts.append(html_table(rows, caption="Metrics"))
        if self.impact is not None:
            parts.append(f"<p>{html.escape(self.impact.sentence())}</p>")
        if self.segments:
            seg_rows = []
            for s in self.segments:
                flat = s.result._flat_row()
                seg_rows.append(
                    _rounded(
                        {"segment": s.segment, "value": s.value, **{k: flat.get(k) for k in keep}}
                    )
                )
            parts.append(html_table(seg_rows, caption="Segments"))
        return "<div class='abkit-analysis'>" + "".join(parts) + "</div>"


def _rounded(row: Mapping[str, Any]) -> dict[str, Any]:
    """Figures to :data:`DISPLAY_DIGITS` significant digits, for reading (not for the data)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, float) and not isinstance(value, bool):
            out[key] = float(f"{value:.{DISPLAY_DIGITS}g}")
        else:
            out[key] = value
    return out
