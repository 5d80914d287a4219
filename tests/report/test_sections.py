"""Sections and plots from a hand-built model: every verdict, guardrail rule and edge case."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from abkit.report import sections as S
from abkit.report.adapt import guardrail_status
from abkit.report.model import (
    Decision,
    Facts,
    Impact,
    MetricRow,
    Quality,
    ReportModel,
    VariantFact,
)
from abkit.report.plots import ForestRow, cumulative_plot, forest_plot
from abkit.report.render import check_offline


def _row(**kw) -> MetricRow:
    base = dict(
        metric="conversion_rate",
        variant="b",
        role="primary",
        metric_type="proportion",
        control_mean=0.1,
        treatment_mean=0.11,
        abs_lift=0.01,
        abs_low=0.004,
        abs_high=0.016,
        rel_lift=0.1,
        rel_low=0.04,
        rel_high=0.16,
        p_value=0.001,
        significant=True,
    )
    base.update(kw)
    return MetricRow(**base)


def _model(verdict: str = "ship", **kw) -> ReportModel:
    base = dict(
        facts=Facts(
            key="<k>",
            owner="A & B",
            variants=(VariantFact("a", 0.5, {}, True), VariantFact("b", 0.5, {"model": "<m>"})),
        ),
        decision=Decision(verdict=verdict, reason="because <reasons>", reasons=("one", "two")),
        metrics=(
            _row(),
            _row(
                metric="errors",
                role="guardrail",
                metric_type="mean",
                higher_is_better=False,
                abs_lift=None,
                rel_lift=None,
                rel_low=None,
                rel_high=None,
                p_value=None,
                significant=False,
                status="not enough data",
                guardrail_status="inconclusive",
            ),
        ),
        quality=Quality(
            counts={"a": 100, "b": 90},
            expected_shares={"a": 0.5, "b": 0.5},
            srm_p_value=0.47,
            srm_ok=True,
            sample_collected=190,
            sample_needed=1000,
            days_remaining=3.5,
        ),
        impact=(Impact("revenue", "year", 1_234_567.0, -5_000.0, 2_500_000.0, "EUR", True, "x"),),
    )
    base.update(kw)
    return ReportModel(**base)


@pytest.mark.parametrize(
    ("verdict", "css", "words"),
    [
        ("ship", "abkit-verdict-ship", "Ship it"),
        ("roll back", "abkit-verdict-roll-back", "Roll back"),
        ("keep running", "abkit-verdict-keep-running", "Keep running"),
        ("no detectable effect", "abkit-verdict-no-detectable-effect", "No detectable effect"),
    ],
)
def test_banner_for_every_verdict(verdict, css, words):
    html = S.decision_banner(_model(verdict)).html
    assert css in html and f"Recommendation: {words}" in html
    assert "because &lt;reasons&gt;" in html and "<li>one</li>" in html


def test_every_section_escapes_and_stays_offline():
    model = _model()
    blocks = [
        S.title_block(model, "<title>"),
        S.decision_banner(model),
        S.headline(model),
        S.impact(model),
        S.scorecard(model),
        S.data_quality(model),
        S.experiment_facts(model),
        S.methodology(model),
        S.footer(model),
        S.report_data(model),
    ]
    page = "".join(str(b) for b in blocks)
    assert "<k>" not in page and "&lt;k&gt;" in page and "&lt;m&gt;" in page
    assert "A &amp; B" in page
    assert check_offline(page) == []
    # One style per impact: every end compact (K/M) because one is over a million.
    assert "+€1.2M" in page and "[−€5.0K, +€2.5M]" in page
    # Sample progress: 19% of the needed units, with the days still to go.
    assert 'data-needed="1000"' in page and "19%" in page and "≈ 3.5 days" in page
    # A metric without data shows dashes and says so, never "nan"/"None".
    assert "not enough data" in page and "None" not in page and "nan" not in page
    assert S.read_report_data(page)["facts"]["key"] == "<k>"
    assert model._repr_html_().count("abkit-scorecard") == 1


def test_bayesian_scorecard_shows_probability_to_beat_control():
    model = _model(metrics=(_row(p_value=None, prob_beat_control=0.9731),))
    html = S.scorecard(model).html
    assert "P(beat control)" in html and "97.3%" in html and "p-value" not in html


@pytest.mark.parametrize(
    ("check", "ci", "higher", "expected"),
    [
        ("breached", (0.1, 0.3), False, "fail"),
        ("ok", (-0.02, 0.03), False, "pass"),  # harm above +5% ruled out
        ("ok", (-0.02, 0.08), False, "inconclusive"),  # +8% harm still possible
        ("ok", (-0.03, 0.02), True, "pass"),
        ("ok", (-0.09, 0.02), True, "inconclusive"),
        ("ok", (None, 0.02), True, "inconclusive"),  # unbounded harmful end
        ("not enough data", None, True, "inconclusive"),
    ],
)
def test_guardrail_status(check, ci, higher, expected):
    assert guardrail_status(check, ci, higher_is_better=higher, margin=0.05) == expected


def test_outcome_follows_the_metric_direction():
    assert _row().outcome == "better"
    assert _row(higher_is_better=False).outcome == "worse"
    assert _row(significant=False).outcome == "neutral"
    assert _row(status="not enough data").outcome == "unknown"


def _png(plot):
    image = Image.open(io.BytesIO(plot.png))
    image.load()
    return image


def test_forest_plot_handles_unbounded_and_missing_rows():
    plot = forest_plot(
        [
            ForestRow("a", 0.05, 0.01, 0.09, "better"),
            ForestRow("b", -0.02, None, 0.01, "neutral"),
            ForestRow("c", None, None, None, "unknown"),
        ]
    )
    image = _png(plot)
    assert image.format == "PNG" and image.width > 600
    assert "a: +5.0% [+1.0%, +9.0%]" in plot.alt and "c: —" in plot.alt
    assert plot._repr_html_().startswith(
        '<figure class="abkit-figure"><img src="data:image/png;base64,'
    )


def test_cumulative_plot_with_gaps():
    import datetime as dt

    days = [dt.date(2026, 1, d) for d in range(1, 6)]
    plot = cumulative_plot(
        days,
        [None, 0.1, 0.08, 0.07, 0.06],
        [None, -0.1, 0.0, 0.01, 0.02],
        [None, 0.3, 0.16, 0.13, 0.1],
    )
    assert _png(plot).height > 200 and "latest estimate +6.0%" in plot.alt
