"""How to read this report: plain words first, then the statistics behind them.

The first part explains the report's words for someone who has never run an experiment;
the second holds the statistics: the tests, the interval method, the corrections, the
guardrail rule, and the analysis' own technical reasons for its verdict (the banner says
the same thing in plain words).
"""

from __future__ import annotations

from abkit.report import format as F
from abkit.report.blocks import HTMLBlock, Section, correction_name, e, level
from abkit.report.model import ReportModel


def _plain(model: ReportModel) -> list[str]:
    lvl = level(model)
    return [
        "The box at the top says what to do and why. Everything below it is the evidence.",
        "Users were split at random into groups: control keeps the current version, each "
        "other group gets a new one. Because the split is random, a difference between the "
        "groups that is larger than chance comes from the change itself.",
        "“Relative lift” is how much higher (+) or lower (−) the new version's average is "
        "than the current one's, in percent. “Absolute lift” is the same change in the "
        "metric's own unit.",
        f"The interval is the range the true change very likely lies in ({lvl} of the time). "
        "When it does not cross zero, the change is called significant.",
        "“Better” and “worse” follow what is good for each metric: more purchases is "
        "better, more errors is worse. Guardrails are metrics that must not get worse.",
        "The projected impact multiplies the change per user by the users a launch would "
        "reach; it assumes the effect stays the same after launch.",
    ]


def _method(model: ReportModel) -> str:
    lvl = level(model)
    tests = list(dict.fromkeys(r.test for r in model.metrics if r.test))
    return {
        "fixed": (
            f"Each metric compares the two groups' averages (per user, or a ratio such as "
            f"revenue per order) with a two-sided test at the {F.fmt_pct(model.alpha, 0)} "
            f"level and a {lvl} confidence interval"
            + (f" ({'; '.join(tests)})" if tests else "")
            + ". Relative-lift intervals (Fieller's method) also account for the uncertainty "
            "of the control's own average. The test is planned for a fixed sample: read "
            "before that sample is reached, a win is only trusted if it clears a stricter "
            "early-look threshold (O'Brien-Fleming), otherwise the advice is to keep running."
        ),
        "sequential": (
            "The test is sequential (always-valid confidence sequences), so the results may be "
            "checked every day without inflating false positives."
        ),
        "bayesian": (
            "The comparison is Bayesian: the report gives the probability that the treatment "
            "beats control and a credible interval."
        ),
    }.get(model.method, f"Method: {model.method}.")


def _statistics(model: ReportModel) -> list[str]:
    parts = [
        "Units (users) are split at random by a stable hash of their id; each unit is counted "
        "in its group from its first exposure, and units that saw more than one variant are "
        "left out.",
        _method(model),
    ]
    if model.cuped:
        parts.append(
            "Variance is reduced with CUPED: each user's behaviour before the experiment is "
            "used to remove noise, which narrows intervals without biasing the lift. The "
            "scorecard's control and treatment columns are the raw averages."
        )
    name = correction_name(model)
    if name:
        # Benjamini-Hochberg bounds the share of false discoveries, not the chance of one.
        goal = (
            "the expected share of false alarms among the significant results"
            if name == "Benjamini-Hochberg"
            else "the chance of any false alarm"
        )
        parts.append(
            f"With several metrics, p-values are adjusted ({name}) so {goal} stays at the "
            "stated level."
        )
    parts.append(
        "Guardrails must not get worse: a guardrail passes when its interval rules out a harmful "
        "change beyond its margin, fails when harm is significant (not adjusted for several "
        "metrics: a false alarm is cheaper than a missed harm), and is inconclusive otherwise. "
        "The recommendation combines the primary metric, the guardrails and the data-quality "
        "checks: when units did not split as configured, no ship or roll-back is recommended "
        "until the cause is found."
    )
    parts.append(
        f"A test that would need more than {F.fmt_duration(model.horizon_days)} from its first "
        "exposure to reach its planned sample is reported as unable to finish."
    )
    return parts


def methodology(model: ReportModel) -> HTMLBlock:
    technical = "".join(f"<li>{e(r)}</li>" for r in model.decision.technical)
    return HTMLBlock(
        '<div class="abkit-howto">'
        + "".join(f"<p>{e(p)}</p>" for p in _plain(model))
        + "</div>"
        + '<h3>Statistical details</h3><div class="abkit-method">'
        + "".join(f"<p>{e(p)}</p>" for p in _statistics(model))
        + (
            f"<p>The analysis' reasons for its verdict:</p><ul>{technical}</ul>"
            if technical
            else ""
        )
        + "</div>"
    )


SECTION = Section("howto", "How to read this report", methodology)
