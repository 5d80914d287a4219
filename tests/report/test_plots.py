"""abkit.report.plots: plain-text user names, dates that never overlap, phone drawings."""

from __future__ import annotations

import datetime as dt
import io
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from abkit.report.plots import (
    DESKTOP,
    PHONE,
    ForestRow,
    Plot,
    bar_plot,
    cumulative_figure,
    cumulative_plot,
    forest_figure,
    forest_plot,
    plain_text,
)

HOSTILE_NAMES = ["cost $\\frac{1}{$ per order", "save $5 to $10", "$x^2$", "a_b ^c {d}"]


def _png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _drawn_texts(fig) -> list[str]:
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]


def _overlaps(labels) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent()) for t in labels if t.get_text()]
    return [
        (a, b)
        for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
        if box_a.overlaps(box_b)
    ]


def test_forest_plot_handles_unbounded_and_missing_rows():
    plot = forest_plot(
        [
            ForestRow("a", 0.05, 0.01, 0.09, "better"),
            ForestRow("b", -0.02, None, 0.01, "neutral"),
            ForestRow("c", None, None, None, "unknown"),
        ]
    )
    assert _png(plot.png).format == "PNG" and _png(plot.png).width > 800
    assert 380 <= _png(plot.phone_png).width <= 420
    assert "a: +5.0% [+1.0%, +9.0%]" in plot.alt and "c: —" in plot.alt
    html = plot._repr_html_()
    assert html.startswith('<figure class="abkit-figure"><picture><source media="(max-width:')
    assert html.count("data:image/png;base64,") == 2


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_dollar_signs_in_user_text_are_drawn_as_typed(name):
    """Issue 13: no mathtext, so no parse error and no italic math from a name."""
    plot = forest_plot([ForestRow(name, 0.05, 0.01, 0.09, "better")], title=f"{name} by x")
    assert _png(plot.png).width > 0
    with plain_text():
        fig = forest_figure([ForestRow(name, 0.05, 0.01, 0.09)], title=name)
        fig.canvas.draw()
        texts = fig.findobj(lambda a: hasattr(a, "get_text") and a.get_text() == name)
        assert texts and all(not t._preprocess_math(name)[1] for t in texts)
    bars = bar_plot([name, "control"], [0.5, 0.5], title=name)
    assert name in bars.alt


def test_mathtext_would_have_broken_the_same_name():
    """The guard above matters: with mathtext on, matplotlib refuses this name."""
    fig = forest_figure([ForestRow(HOSTILE_NAMES[0], 0.05, 0.01, 0.09)])
    with pytest.raises(ValueError):
        fig.canvas.draw()


def test_plot_in_a_notebook_is_png_with_a_short_text_alternative():
    plot = forest_plot([ForestRow("a", 0.05, 0.01, 0.09, "better")])
    data, metadata = plot._repr_mimebundle_()
    assert set(data) == {"text/html", "image/png", "text/plain"}
    assert _png(__import__("base64").b64decode(data["image/png"])).format == "PNG"
    assert data["text/plain"] == plot.alt and len(data["text/plain"]) < 500
    assert metadata["image/png"]["alt"] == plot.alt
    assert len(repr(plot)) < 200


@settings(max_examples=25, deadline=None)
@given(days=st.integers(min_value=1, max_value=400), start=st.dates(dt.date(2020, 1, 1)))
def test_date_labels_never_overlap_at_either_width(days, start):
    dates = [start + dt.timedelta(days=i) for i in range(days)]
    lifts = [0.01 * (i % 7) for i in range(days)]
    for layout in (DESKTOP, PHONE):
        with plain_text():
            fig = cumulative_figure(dates, lifts, lifts, lifts, layout)
            fig.canvas.draw()
            labels = fig.axes[0].get_xticklabels()
            assert _overlaps(labels) == [], (layout, days)
            assert len([t for t in labels if t.get_text()]) >= 1


def test_forest_labels_wrap_and_never_overlap_on_a_phone():
    rows = [
        ForestRow(f"a rather long metric name number {i} (variant {i})", 0.01, 0, 0.02)
        for i in range(6)
    ]
    with plain_text():
        fig = forest_figure(rows, PHONE)
        fig.canvas.draw()
        ax = fig.axes[0]
        assert _overlaps(ax.get_yticklabels()) == []
        assert _overlaps(ax.get_xticklabels()) == []
        assert all(t.get_window_extent().x0 >= 0 for t in ax.get_yticklabels())


def test_cumulative_plot_with_gaps():
    days = [dt.date(2026, 1, d) for d in range(1, 6)]
    plot = cumulative_plot(
        days,
        [None, 0.1, 0.08, 0.07, 0.06],
        [None, -0.1, 0.0, 0.01, 0.02],
        [None, 0.3, 0.16, 0.13, 0.1],
    )
    assert _png(plot.png).height > 200 and "latest estimate +6.0%" in plot.alt
    assert isinstance(plot, Plot)
