"""The recommendation in a product manager's words, from the analysis' structured evidence.

The banner reads the analysis' *structured* decision (verdict, basis, the metric that
decided, the sample plan), never its technical reasons, which go to the methodology
section. Its sentences follow four rules: say what to do first, then why; name metrics as
the scorecard does; round figures (percentages to one decimal, counts to two significant
digits, durations in days/weeks/months); no code, no test names, no p-values.

**Cannot finish.** A test told to keep running (not enough sample yet) whose planned
sample would only be reached after the horizon (``days so far + days still needed >
horizon``, default eight weeks) gets the state ``"cannot finish"`` and three options,
each with its figure:

* more traffic: the daily users needed to finish within the time left (at least two
  weeks), as a multiple of today's and as a share of all eligible users;
* a larger detectable effect: the smallest effect the users reachable by then can
  detect, ``mde × sqrt(n_planned / n_reachable)`` (the minimum detectable effect of a
  two-sample test scales as ``1 / sqrt(n)``, e.g. Kohavi, Tang & Xu 2020, ch. 17);
* stop: keep the current version; the change is too small to measure with this traffic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from abkit.report import format as F
from abkit.report.model import Decision, Facts, Harm, Impact, MetricRow, ReportState
from abkit.vocabulary import Verdict

# Shortest time left we plan for when the horizon is already (nearly) used up.
MIN_DAYS_LEFT = 14.0


@dataclass(frozen=True)
class Evidence:
    """What the banner is written from (all of it from the analysis result)."""

    verdict: Verdict
    basis: str
    decided_by: tuple[str, str] | None
    winner: str | None
    trustworthy: bool
    rows: tuple[MetricRow, ...]
    harms: tuple[Harm, ...]
    impacts: tuple[Impact, ...]
    facts: Facts
    sample_collected: int | None
    sample_needed: int | None  # more units still needed (all arms)
    days_needed: float | None  # more days at today's traffic
    n_total: float | None  # units planned (all arms)
    mde: float | None  # relative effect the plan detects
    horizon_days: float

    def row(self, metric: str, variant: str | None = None) -> MetricRow | None:
        for row in self.rows:
            if row.metric == metric and (variant is None or row.variant == variant):
                return row
        return None

    @property
    def primary(self) -> MetricRow | None:
        if self.winner is not None:
            for row in self.rows:
                if row.role == "primary" and row.variant == self.winner:
                    return row
        return next((r for r in self.rows if r.role == "primary"), None)


def _change(row: MetricRow) -> str:
    """``rose 4.9%`` / ``fell 3.1%`` / ``did not change``, by the relative lift."""
    if row.rel_lift is None:
        return "could not be measured"
    size = F.fmt_pct(abs(row.rel_lift), 1)
    if size == "0.0%":
        return "did not change"
    return f"{'rose' if row.rel_lift > 0 else 'fell'} {size}"


def _settled(row: MetricRow) -> str:
    """`` (not a clear change)`` when the change is within chance, else nothing."""
    return "" if row.significant else " (not a clear change)"


def _from_to(row: MetricRow) -> str:
    if row.metric_type == "proportion":
        return f"from {F.fmt_pct(row.control_mean, 1)} to {F.fmt_pct(row.treatment_mean, 1)}"
    before = F.fmt_metric_value(
        row.control_mean, row.metric_type, unit=row.unit, currency=row.currency
    )
    after = F.fmt_metric_value(
        row.treatment_mean, row.metric_type, unit=row.unit, currency=row.currency
    )
    return f"from {before} to {after}"


def _more_users(e: Evidence) -> str:
    if not e.sample_needed:
        return "more users are needed"
    when = f", about {F.fmt_duration(e.days_needed)} at today's traffic" if e.days_needed else ""
    return f"about {F.fmt_about(e.sample_needed)} more users are needed{when}"


def _guardrails_ok(e: Evidence, variant: str | None) -> str | None:
    guards = [
        r for r in e.rows if r.role == "guardrail" and (variant is None or r.variant == variant)
    ]
    if not guards:
        return None
    names = ", ".join(r.display_name for r in guards)
    if all(r.guardrail_status == "pass" for r in guards):
        return f"No guardrail got worse ({names})."
    return f"No guardrail got significantly worse ({names})."


def total_noun(label: str, metric_type: str) -> str:
    """What a per-user change adds up to over users: ``errors per user`` -> ``errors``."""
    if metric_type == "proportion":
        return f"users ({label})"
    for suffix in (" per user", " per unit"):
        if label.endswith(suffix):
            return label[: -len(suffix)]
    return f"{label}, summed over users"


def harm_sentence(h: Harm) -> str:
    """``client errors per user rose 22.2%: about 4,300 more per month across 850,000
    users, costing about $1,290 per month``."""
    rel = F.fmt_pct(abs(h.rel_lift), 1) if h.rel_lift is not None else "—"
    words = f"{h.label} {'rose' if (h.rel_lift or 0) > 0 else 'fell'} {rel}"
    extra = []
    if h.per_period is not None:
        more = "more" if h.per_period > 0 else "fewer"
        noun = total_noun(h.label, h.metric_type)
        extra.append(f"about {F.fmt_about(abs(h.per_period))} {more} {noun} per {h.period}")
    if h.users:
        extra.append(f"across {F.fmt_about(h.users)} users")
    text = words + (": " + " ".join(extra) if extra else "")
    if h.money is not None:
        text += f", costing about {F.fmt_money(abs(h.money), h.currency, sig=2)} per {h.period}"
    return text


def _cannot_finish(e: Evidence) -> bool:
    if e.verdict != "keep running" or e.basis not in ("underpowered", "early_look"):
        return False
    if e.days_needed is None or not e.trustworthy:
        return False
    return (e.facts.days or 0.0) + e.days_needed > e.horizon_days


def _options(e: Evidence) -> tuple[str, ...]:
    elapsed = e.facts.days or 0.0
    left = max(e.horizon_days - elapsed, MIN_DAYS_LEFT)
    per_day = e.facts.units_per_day or 0.0
    options = []
    if e.sample_needed and per_day:
        needed_per_day = e.sample_needed / left
        factor = needed_per_day / per_day
        share = e.facts.traffic * factor
        within = f"within {F.fmt_duration(left)}"
        if share <= 1.0:
            options.append(
                f"More traffic: send about {F.fmt_number(factor, 1)}× today's users to the test "
                f"({F.fmt_pct(share, 0)} of eligible users instead of {F.fmt_pct(e.facts.traffic, 0)}) "
                f"to finish {within}."
            )
        else:
            options.append(
                f"More traffic: finishing {within} would need {F.fmt_number(factor, 1)}× today's "
                "users, more than all eligible users; only a larger effect or stopping remain."
            )
    if e.mde and e.n_total and e.sample_collected is not None and per_day:
        reachable = e.sample_collected + per_day * left
        detectable = e.mde * math.sqrt(e.n_total / max(reachable, 1.0))
        options.append(
            f"Aim for a larger effect: with the users reachable {f'within {F.fmt_duration(left)}'}, "
            f"the test can detect a change of about {F.fmt_pct(detectable, 0)} "
            f"(it was planned for {F.fmt_pct(e.mde, 0)})."
        )
    options.append(
        "Stop the test and keep the current version: the change is too small to measure with "
        "this traffic."
    )
    return tuple(options)


def _sentence(text: str) -> str:
    """``text`` with a capital first letter and a full stop."""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


# Each wording below returns (headline, supporting lines, options).
Words = tuple[str, tuple[str, ...], tuple[str, ...]]


def _ship(e: Evidence, primary: MetricRow, variant: str) -> Words:
    headline = f"Ship {variant}: {primary.display_name} {_change(primary)}"
    if primary.rel_lift is not None:
        headline += f" ({_from_to(primary)})"
    guards = _guardrails_ok(e, variant)
    return _sentence(headline), (guards,) if guards else (), ()


def _roll_back(e: Evidence, primary: MetricRow | None, variant: str) -> Words:
    decisive = [h for h in e.harms if e.decided_by is None or h.metric == e.decided_by[0]]
    harms = decisive or list(e.harms)
    if e.basis == "guardrail_breach" and harms:
        lines = [_sentence(harm_sentence(h)) for h in harms]
        if primary is not None:
            gain = primary.rel_lift is not None and (primary.rel_lift > 0) == bool(
                getattr(primary, "higher_is_better", True)
            )
            lines.append(
                f"Given up by rolling back: {primary.display_name} {_change(primary)}"
                f"{_settled(primary)}, not enough to accept the harm."
                if gain
                else f"Nothing is given up by rolling back: {primary.display_name} "
                f"{_change(primary)}{_settled(primary)} as well."
            )
        return f"Roll back {harms[0].variant}: it made {harms[0].label} worse.", tuple(lines), ()
    if primary is None:
        return "Roll back.", (), ()
    went = (_sentence(f"{primary.display_name} went {_from_to(primary)}"),)
    return _sentence(f"Roll back {variant}: {primary.display_name} {_change(primary)}"), went, ()


def _fix_data() -> Words:
    return (
        "Keep running, and fix the data first: users did not split between the variants as "
        "configured, so no result can be trusted yet.",
        ("Find why some users are missing or counted twice, then read the results again.",),
        (),
    )


def _so_far(primary: MetricRow | None) -> tuple[str, ...]:
    if primary is None:
        return ()
    return (f"So far {primary.display_name} {_change(primary)}, which is not conclusive.",)


def _cannot_finish_words(e: Evidence, primary: MetricRow | None) -> Words:
    total = (e.facts.days or 0.0) + (e.days_needed or 0.0)
    headline = (
        "This test cannot finish in a sensible time: at today's traffic it needs about "
        f"{F.fmt_duration(total)} in all, beyond the {F.fmt_duration(e.horizon_days)} it may run."
    )
    return headline, _so_far(primary), _options(e)


def _keep_running(e: Evidence, primary: MetricRow | None, variant: str) -> Words:
    if e.basis == "early_look" and primary is not None and primary.outcome == "better":
        lift = F.fmt_pct(primary.rel_lift, 1, signed=True)
        return (
            f"Keep running: {variant} looks better on {primary.display_name} ({lift}), "
            f"but it is too early to trust; {_more_users(e)}.",
            (),
            (),
        )
    if e.basis == "inconclusive_guardrail":
        unclear = [
            r.display_name
            for r in e.rows
            if r.role == "guardrail" and r.guardrail_status == "inconclusive"
        ]
        name = primary.display_name if primary is not None else "the primary metric"
        why = (f"For a clear answer, {_more_users(e)}.",) if e.sample_needed else ()
        return (
            f"Keep running: {name} looks better, but it is not yet clear that "
            f"{', '.join(unclear) or 'every guardrail'} is unharmed.",
            why,
            (),
        )
    return f"Keep running: too early to tell; {_more_users(e)}.", _so_far(primary), ()


def _no_effect(e: Evidence, primary: MetricRow | None) -> Words:
    why = (
        (
            f"The test had enough users to see a change of {F.fmt_pct(e.mde, 0)}, so an effect "
            "that large is unlikely; keeping the current version costs nothing.",
        )
        if e.mde
        else ()
    )
    if primary is None:
        return "No detectable effect.", why, ()
    change = _change(primary)
    if change == "did not change":
        return f"No detectable effect: {primary.display_name} did not change measurably.", why, ()
    return (
        f"No detectable effect: {primary.display_name} {change}, a difference chance alone "
        "could explain.",
        why,
        (),
    )


def decide(e: Evidence, *, technical: Sequence[str] = ()) -> Decision:
    """The :class:`Decision` of the report: state, headline, supporting lines, options."""
    primary = e.primary
    variant = e.winner or (primary.variant if primary is not None else "the new version")
    state: ReportState = e.verdict
    if e.verdict == "ship" and primary is not None:
        words = _ship(e, primary, variant)
    elif e.verdict == "ship":
        words = (f"Ship {variant}.", (), ())
    elif e.verdict == "roll back":
        words = _roll_back(e, primary, variant)
    elif not e.trustworthy or e.basis == "srm":
        words = _fix_data()
    elif _cannot_finish(e):
        state = "cannot finish"
        words = _cannot_finish_words(e, primary)
    elif e.verdict == "keep running":
        words = _keep_running(e, primary, variant)
    else:
        words = _no_effect(e, primary)
    headline, why, options = words
    return Decision(
        verdict=e.verdict,
        state=state,
        headline=headline,
        why=why,
        options=options,
        technical=tuple(technical),
        basis=e.basis,
        decided_by=e.decided_by,
        trustworthy=e.trustworthy,
    )
