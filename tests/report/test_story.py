"""abkit.report.story: the banner in a product manager's words, and the cannot-finish state."""

from __future__ import annotations

import dataclasses
import math
import re

import fakes
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abkit.report.adapt import from_analysis
from abkit.report.model import REPORT_STATES

SCENARIOS = ["ship", "roll back", "keep running", "cannot finish", "no detectable effect", "srm"]

# Code, statistics jargon and raw numbers that belong in the methodology, not the banner.
FORBIDDEN = [
    r"\bp\s*[=<>]",  # p-values
    r"\w+=\w*",  # keyword syntax: method='sequential'
    r"['\"]\w+['\"]",  # quoted identifiers
    r"\b\w+_\w+\b",  # snake_case names
    r"\d[eE][-+]?\d",  # scientific notation
    r"\b(?:Welch|Fieller|O'Brien|Fleming|Holm|t-test|z-test|chi|CUPED|mSPRT|sequential"
    r"|boundary|alpha|power|MDE|interval)\b",
    r"[()]\s*\)",  # call syntax leftovers
]


def banner_text(model) -> str:
    d = model.decision
    return " ".join((d.headline, *d.why, *d.options))


def _too_precise(text: str) -> list[str]:
    """Numbers with more figures than a person needs: > 1 decimal in a percentage, a
    count with more than two significant digits, a day count with decimals."""
    bad = []
    for match in re.finditer(r"\d[\d,]*(?:\.\d+)?", text):
        figure = match.group(0)
        tail = text[match.end() : match.end() + 2]
        digits = figure.replace(",", "")
        if "." in digits:
            _whole, frac = digits.split(".")
            if tail.startswith("%") and len(frac) <= 1:
                continue
            if text[max(0, match.start() - 2) : match.start()].strip() in ("$", "€", "¤", "£"):
                continue  # money follows the amount rule (3 significant digits)
            if tail.startswith("×") and len(frac) <= 1:
                continue
            bad.append(figure)
            continue
        significant = digits.strip("0") or "0"
        if len(digits) > 3 and len(significant) > 2:
            bad.append(figure)
    return bad


@settings(max_examples=60, deadline=None)
@given(
    scenario=st.sampled_from(SCENARIOS),
    conversion_lift=st.floats(-0.2, 0.3),
    error_lift=st.floats(0.05, 0.5),
    n=st.integers(2_000, 200_000),
    days=st.integers(2, 60),
)
def test_banner_has_no_code_no_test_names_and_rounded_figures(
    scenario, conversion_lift, error_lift, n, days
):
    result = fakes.result(
        scenario, conversion_lift=conversion_lift, error_lift=error_lift, n=n, days=days
    )
    model = from_analysis(result, values={"errors_per_user": 0.4})
    text = banner_text(model)
    for pattern in FORBIDDEN:
        assert not re.search(pattern, text), (pattern, text)
    assert _too_precise(text) == [], text
    assert model.decision.state in REPORT_STATES
    # The technical reasons are kept, for the methodology section.
    assert any("p = " in t or "p < " in t for t in model.decision.technical)


def test_the_issue_s_keep_running_banner_is_now_plain():
    """Issue 14's example: 4% of 262,540 units, 368.2 more days: beyond the horizon."""
    model = from_analysis(fakes.result("cannot finish", conversion_lift=0.005, n=5_000, days=7))
    d = model.decision
    assert d.state == "cannot finish"
    assert d.headline.startswith("This test cannot finish in a sensible time")
    assert "8 weeks" in d.headline
    assert [o.split(":")[0] for o in d.options] == [
        "More traffic",
        "Aim for a larger effect",
        "Stop the test and keep the current version",
    ]


def test_cannot_finish_depends_on_the_horizon():
    result = fakes.result("cannot finish", conversion_lift=0.005, n=20_000, days=14)
    days_needed = result.plan.days_needed
    assert from_analysis(result).decision.state == "cannot finish"
    long_enough = 14 + days_needed + 1
    relaxed = from_analysis(result, horizon_days=long_enough).decision
    assert relaxed.state == "keep running" and relaxed.options == ()
    # A keep-running test within the horizon stays "keep running".
    assert from_analysis(fakes.result("keep running")).decision.state == "keep running"
    # A sample ratio mismatch is never "cannot finish": the data must be fixed first.
    srm = fakes.result("srm")
    srm = dataclasses.replace(srm, plan=result.plan)
    assert from_analysis(srm).decision.state == "keep running"


def test_cannot_finish_options_carry_their_figures():
    """More traffic: the multiple of today's users; larger effect: mde·sqrt(N/n)."""
    result = fakes.result("cannot finish", conversion_lift=0.005, n=20_000, days=14)
    plan = result.plan
    per_day = result.experiment.units_per_day
    left = 56 - 14
    model = from_analysis(result)
    traffic, effect, stop = model.decision.options
    factor = plan.sample_needed / left / per_day
    assert f"{factor:,.1f}×" in traffic
    reachable = plan.units_collected + per_day * left
    detectable = plan.mde * math.sqrt(plan.n_total / reachable)
    assert f"{detectable * 100:.0f}%" in effect and "planned for 5%" in effect
    assert stop.startswith("Stop the test")


def test_traffic_option_says_the_share_when_it_is_reachable():
    result = fakes.result("cannot finish", conversion_lift=0.005, n=20_000, days=14)
    plan = dataclasses.replace(result.plan, sample_needed=200_000, days_needed=70.0)
    model = from_analysis(dataclasses.replace(result, plan=plan))
    traffic = model.decision.options[0]
    share = 0.2 * (200_000 / 42 / result.experiment.units_per_day)
    assert f"{share * 100:.0f}% of eligible users instead of 20%" in traffic


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_state_has_a_headline_that_starts_with_what_to_do(scenario):
    model = from_analysis(fakes.result(scenario, error_lift=0.22))
    first = model.decision.headline.split(":")[0].split(",")[0]
    assert first in {
        "Ship v2",
        "Roll back v2",
        "Keep running",
        "No detectable effect",
        "This test cannot finish in a sensible time",
    }


def test_roll_back_leads_with_the_harm_then_what_was_given_up():
    model = from_analysis(
        fakes.result("roll back", error_lift=0.22), values={"errors_per_user": 0.4}
    )
    d = model.decision
    assert d.headline == "Roll back v2: it made errors per user worse."
    harm, given_up = d.why
    assert harm.startswith("Errors per user rose 22.0%") and "per month across" in harm
    assert "costing about $" in harm
    assert given_up.startswith("Given up by rolling back: conversion rate rose")
    h = model.harm[0]
    users = h.users
    assert h.per_period == pytest.approx(h.abs_lift * users)
    assert h.money == pytest.approx(h.per_period * 0.4)
