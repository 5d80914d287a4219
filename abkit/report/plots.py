"""Plot helpers for reports and notebooks: matplotlib (Agg) figures embedded as PNG.

Figures are built with the object API (``matplotlib.figure.Figure`` on an Agg canvas),
never through ``pyplot``: no global state, no GUI backend, the same pixels in a kernel, a
test or a server. A :class:`Plot` displays in Jupyter and in exported HTML as an
``<img>`` with a data URI and alternative text, so the report is self-contained and a
screen reader can say what the chart shows.

Colours are the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), which
stays distinguishable under the common colour-vision deficiencies; status is also shown by
marker shape, so nothing depends on colour alone.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
GREY = "#7f7f7f"
# Meaning of a result -> (colour, marker); the marker repeats the meaning for print/greyscale.
STATUS_STYLE = {
    "better": (OKABE_ITO["bluish_green"], "^"),
    "worse": (OKABE_ITO["vermillion"], "v"),
    "neutral": (OKABE_ITO["blue"], "o"),
    "unknown": (GREY, "s"),
}

DPI = 110


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style_axes(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)


@dataclass(frozen=True)
class Plot:
    """A rendered figure: PNG bytes, alternative text and an optional caption."""

    png: bytes
    alt: str
    caption: str | None = None

    @classmethod
    def from_figure(cls, fig: Any, alt: str, caption: str | None = None) -> Plot:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
        return cls(png=buffer.getvalue(), alt=alt, caption=caption)

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    def _repr_html_(self) -> str:
        caption = f"<figcaption>{html.escape(self.caption)}</figcaption>" if self.caption else ""
        return (
            f'<figure class="abkit-figure"><img src="{self.data_uri}" '
            f'alt="{html.escape(self.alt, quote=True)}">{caption}</figure>'
        )

    def save(self, path: str) -> None:
        with open(path, "wb") as handle:
            handle.write(self.png)


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


@dataclass(frozen=True)
class ForestRow:
    """One line of a forest plot: a point estimate and its interval (relative lift)."""

    label: str
    estimate: float | None
    low: float | None
    high: float | None
    status: str = "neutral"  # better | worse | neutral | unknown
    group: str = ""  # e.g. "primary", "guardrail"


def forest_plot(
    rows: Sequence[ForestRow],
    *,
    title: str = "Relative lift with confidence interval",
    xlabel: str = "Relative lift vs control",
    caption: str | None = None,
) -> Plot:
    """Point estimates and intervals on one axis, zero marked; percentages on the axis.

    An interval end that is ``None`` (unbounded, e.g. a one-sided interval or a Fieller
    set that does not close) is drawn to the plot edge with an arrow.
    """
    from matplotlib.ticker import FuncFormatter

    rows = list(rows)
    height = 1.1 + 0.42 * max(len(rows), 1)
    fig = _figure(8.0, height)
    ax = fig.add_subplot()
    _style_axes(ax)
    finite = [v for r in rows for v in (r.estimate, r.low, r.high) if _finite(v)]
    span = max([abs(v) for v in finite] + [0.01])
    limit = span * 1.15
    ys = list(range(len(rows)))[::-1]
    for y, row in zip(ys, rows, strict=False):
        colour, marker = STATUS_STYLE.get(row.status, STATUS_STYLE["unknown"])
        if not _finite(row.estimate):
            ax.text(0, y, "not enough data", va="center", ha="center", fontsize=8, color=GREY)
            continue
        lo = row.low if _finite(row.low) else -limit
        hi = row.high if _finite(row.high) else limit
        ax.plot([lo, hi], [y, y], color=colour, linewidth=2.2, solid_capstyle="butt")
        for end, given in ((lo, row.low), (hi, row.high)):
            if not _finite(given):
                ax.annotate(
                    "",
                    xy=(end, y),
                    xytext=(end * 0.9, y),
                    arrowprops={"arrowstyle": "->", "color": colour},
                )
        ax.plot([row.estimate], [y], marker=marker, color=colour, markersize=8, zorder=3)
    ax.axvline(0, color="#333333", linewidth=1)
    ax.set_yticks(ys)
    ax.set_yticklabels([r.label for r in rows], fontsize=9)
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v * 100:+.1f}%"))
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_title(title, fontsize=10, loc="left")
    alt_parts = []
    from abkit.report.format import fmt_interval, fmt_pct

    for row in rows:
        alt_parts.append(
            f"{row.label}: {fmt_pct(row.estimate, 1, signed=True)} "
            f"{fmt_interval(row.low, row.high, fmt_pct, digits=1, signed=True)}"
        )
    alt = f"{title}. " + "; ".join(alt_parts)
    return Plot.from_figure(fig, alt=alt, caption=caption)


def cumulative_plot(
    dates: Sequence[Any],
    estimate: Sequence[float | None],
    low: Sequence[float | None] | None = None,
    high: Sequence[float | None] | None = None,
    *,
    title: str = "Cumulative relative lift over time",
    ylabel: str = "Relative lift vs control",
    caption: str | None = None,
    percent: bool = True,
) -> Plot:
    """A cumulative estimate by day with its interval band; zero marked.

    A band that narrows and an estimate that settles say the result is stable; a trend
    that keeps moving (novelty, a learning model) says to keep running.
    """
    from matplotlib.ticker import FuncFormatter

    fig = _figure(8.0, 3.0)
    ax = fig.add_subplot()
    _style_axes(ax)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
    xs = list(dates)
    est = [math.nan if not _finite(v) else float(v) for v in estimate]
    colour = OKABE_ITO["blue"]
    if low is not None and high is not None:
        lo = [math.nan if not _finite(v) else float(v) for v in low]
        hi = [math.nan if not _finite(v) else float(v) for v in high]
        ax.fill_between(xs, lo, hi, color=OKABE_ITO["sky_blue"], alpha=0.35, linewidth=0)
    ax.plot(xs, est, color=colour, linewidth=2, marker="o", markersize=3)
    ax.axhline(0, color="#333333", linewidth=1)
    if percent:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v * 100:+.1f}%"))
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=10, loc="left")
    fig.autofmt_xdate(rotation=0, ha="center")
    from abkit.report.format import fmt_pct

    last = next((v for v in reversed(est) if not math.isnan(v)), None)
    alt = f"{title}: {len(xs)} days; latest estimate {fmt_pct(last, 1, signed=True)}."
    return Plot.from_figure(fig, alt=alt, caption=caption)


def bar_plot(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    expected: Sequence[float] | None = None,
    title: str = "",
    ylabel: str = "",
    caption: str | None = None,
    percent: bool = False,
) -> Plot:
    """Bars per label, with optional expected values drawn as markers (e.g. SRM shares)."""
    from matplotlib.ticker import FuncFormatter

    fig = _figure(6.0, 2.8)
    ax = fig.add_subplot()
    _style_axes(ax)
    palette = [OKABE_ITO[k] for k in ("blue", "orange", "bluish_green", "reddish_purple")]
    xs = range(len(labels))
    ax.bar(xs, values, color=[palette[i % len(palette)] for i in xs], width=0.6)
    if expected is not None:
        ax.scatter(
            list(xs), expected, marker="_", s=900, color="#000000", zorder=3, label="expected"
        )
        ax.legend(fontsize=8, frameon=False)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=9)
    if percent:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v * 100:.0f}%"))
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=10, loc="left")
    alt = f"{title}: " + ", ".join(
        f"{label} {value:.4g}" for label, value in zip(labels, values, strict=False)
    )
    return Plot.from_figure(fig, alt=alt, caption=caption)


def line_plot(
    x: Sequence[float],
    series: dict[str, Sequence[float]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    caption: str | None = None,
    x_percent: bool = False,
    y_percent: bool = False,
    logy: bool = False,
) -> Plot:
    """Several named lines on one axis (planner curves: sample size against effect)."""
    from matplotlib.ticker import FuncFormatter

    fig = _figure(7.0, 3.0)
    ax = fig.add_subplot()
    _style_axes(ax)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
    palette = [
        OKABE_ITO[k] for k in ("blue", "vermillion", "bluish_green", "orange", "reddish_purple")
    ]
    markers = ["o", "s", "^", "D", "v"]
    for i, (name, ys) in enumerate(series.items()):
        ax.plot(
            list(x), list(ys), label=name, color=palette[i % 5], marker=markers[i % 5], markersize=4
        )
    if logy:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    if x_percent:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v * 100:.1f}%"))
    if y_percent:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v * 100:.0f}%"))
    elif not logy:
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=10, loc="left")
    if len(series) > 1:
        ax.legend(fontsize=8, frameon=False)
    alt = f"{title}: " + "; ".join(series)
    return Plot.from_figure(fig, alt=alt, caption=caption)
