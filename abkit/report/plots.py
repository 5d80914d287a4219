"""Plot helpers for reports and notebooks: matplotlib (Agg) figures embedded as PNG.

Figures are built with the object API (``matplotlib.figure.Figure`` on an Agg canvas),
never through ``pyplot``: no global state, no GUI backend, the same pixels in a kernel, a
test or a server. A :class:`Plot` displays in Jupyter as an ``image/png`` output (with a
short ``text/plain`` alternative, never a repr of the bytes) and in exported HTML as a
``<picture>`` with data URIs and alternative text, so the report is self-contained and a
screen reader can say what the chart shows.

Every chart is drawn twice: at desktop width and at phone width (``PHONE``: about 400
CSS pixels, with larger type relative to the figure), and the browser picks one by its
viewport (``<source media="(max-width: 600px)">``), so a chart stays readable at 390 px.

User text (metric, variant and segment names) is plain text: matplotlib's mathtext is
off while a figure is built and drawn (``text.parse_math = False``), so ``$5 to $10``
shows dollars instead of italic math or a parse error.

Colours are the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), which
stays distinguishable under the common colour-vision deficiencies; status is also shown by
marker shape, so nothing depends on colour alone.
"""

from __future__ import annotations

import base64
import html
import io
import math
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from abkit.report.format import fmt_interval, fmt_pct

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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
# The viewport width below which the phone drawing is shown (CSS pixels).
PHONE_BREAKPOINT_PX = 600


@dataclass(frozen=True)
class Layout:
    """The size of one drawing: figure width (inches), type size (points), label wrap."""

    width: float
    font: float
    wrap: int  # characters per line of a category label

    def text(self, size: float = 0.0) -> float:
        return self.font + size


DESKTOP = Layout(width=8.0, font=9.0, wrap=40)
# 3.6 in at 110 dpi is 396 px: shown at about 360 CSS px on a 390 px phone, so 9.5 pt
# type stays about 8.5 pt on screen.
PHONE = Layout(width=3.6, font=9.5, wrap=18)


@contextmanager
def plain_text() -> Iterator[None]:
    """matplotlib settings under which every string is drawn as typed (no mathtext)."""
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}):
        yield


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style_axes(ax: Axes, layout: Layout) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=layout.font)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


@dataclass(frozen=True)
class Plot:
    """A rendered figure: PNG bytes (desktop and phone), alternative text, a caption."""

    png: bytes
    alt: str
    caption: str | None = None
    phone_png: bytes | None = None

    @classmethod
    def draw(cls, build: Callable[[Layout], Figure], alt: str, caption: str | None = None) -> Plot:
        """Draw ``build`` at desktop and phone sizes, with user text as plain text."""
        with plain_text():
            wide = _png(build(DESKTOP))
            narrow = _png(build(PHONE))
        return cls(png=wide, alt=alt, caption=caption, phone_png=narrow)

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + _b64(self.png)

    def _repr_html_(self) -> str:
        caption = f"<figcaption>{html.escape(self.caption)}</figcaption>" if self.caption else ""
        source = (
            f'<source media="(max-width: {PHONE_BREAKPOINT_PX}px)" '
            f'srcset="data:image/png;base64,{_b64(self.phone_png)}">'
            if self.phone_png
            else ""
        )
        return (
            f'<figure class="abkit-figure"><picture>{source}<img src="{self.data_uri}" '
            f'alt="{html.escape(self.alt, quote=True)}"></picture>{caption}</figure>'
        )

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        """``image/png`` for notebooks, the ``<picture>`` for HTML, the alt text as text."""
        data = {
            "text/html": self._repr_html_(),
            "image/png": _b64(self.png),
            "text/plain": self.alt,
        }
        return data, {"image/png": {"alt": self.alt}}

    def __repr__(self) -> str:
        return f"Plot({self.alt!r}, {len(self.png):,} bytes)"

    def save(self, path: str) -> None:
        with open(path, "wb") as handle:
            handle.write(self.png)


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _number(x: float | None) -> float:
    """A plottable number: a missing or non-finite value becomes NaN (a gap)."""
    return float(x) if x is not None and _finite(x) else math.nan


def _percent_axis(signed: bool = True) -> Any:
    from matplotlib.ticker import FuncFormatter

    sign = "+" if signed else ""
    return FuncFormatter(lambda v, _pos: f"{v * 100:{sign}.1f}%".replace("-", "\u2212"))


@dataclass(frozen=True)
class ForestRow:
    """One line of a forest plot: a point estimate and its interval (relative lift)."""

    label: str
    estimate: float | None
    low: float | None
    high: float | None
    status: str = "neutral"  # better | worse | neutral | unknown
    group: str = ""  # e.g. "primary", "guardrail"


def forest_figure(
    rows: Sequence[ForestRow],
    layout: Layout = DESKTOP,
    *,
    title: str = "Relative lift with confidence interval",
    xlabel: str = "Relative lift vs control",
) -> Figure:
    """The forest plot's figure (drawn, not yet saved) at one layout."""
    rows = list(rows)
    labels = [textwrap.fill(r.label, layout.wrap) for r in rows]
    lines = sum(label.count("\n") + 1 for label in labels)
    height = 1.1 + 0.3 * max(lines, 1) + 0.12 * max(len(rows), 1)
    fig = _figure(layout.width, height)
    ax = fig.add_subplot()
    _style_axes(ax, layout)
    finite = [_number(v) for r in rows for v in (r.estimate, r.low, r.high) if _finite(v)]
    span = max([abs(v) for v in finite] + [0.01])
    limit = span * 1.15
    ys = list(range(len(rows)))[::-1]
    for y, row in zip(ys, rows, strict=True):
        colour, marker = STATUS_STYLE.get(row.status, STATUS_STYLE["unknown"])
        if not _finite(row.estimate):
            ax.text(0, y, "not enough data", va="center", ha="center", fontsize=8, color=GREY)
            continue
        lo = _number(row.low) if _finite(row.low) else -limit
        hi = _number(row.high) if _finite(row.high) else limit
        ax.plot([lo, hi], [y, y], color=colour, linewidth=2.2, solid_capstyle="butt")
        for end, given in ((lo, row.low), (hi, row.high)):
            if not _finite(given):
                ax.annotate(
                    "",
                    xy=(end, y),
                    xytext=(end * 0.9, y),
                    arrowprops={"arrowstyle": "->", "color": colour},
                )
        ax.plot([_number(row.estimate)], [y], marker=marker, color=colour, markersize=8, zorder=3)
    ax.axvline(0, color="#333333", linewidth=1)
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=layout.font)
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=7 if layout is DESKTOP else 4))
    ax.xaxis.set_major_formatter(_percent_axis())
    ax.set_xlabel(xlabel, fontsize=layout.font)
    ax.set_title(textwrap.fill(title, layout.wrap * 2), fontsize=layout.text(1), loc="left")
    return fig


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
    rows = list(rows)
    alt_parts = [
        f"{row.label}: {fmt_pct(row.estimate, 1, signed=True)} "
        f"{fmt_interval(row.low, row.high, fmt_pct, digits=1, signed=True)}"
        for row in rows
    ]
    return Plot.draw(
        lambda layout: forest_figure(rows, layout, title=title, xlabel=xlabel),
        alt=f"{title}. " + "; ".join(alt_parts),
        caption=caption,
    )


def _date_axis(ax: Axes, layout: Layout) -> None:
    """Dates that never overlap: at most one label per ~0.9 in, concise month/day forms."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(minticks=2, maxticks=max(3, int(layout.width / 0.9)))
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, show_offset=True))


def cumulative_figure(
    dates: Sequence[Any],
    estimate: Sequence[float | None],
    low: Sequence[float | None] | None = None,
    high: Sequence[float | None] | None = None,
    layout: Layout = DESKTOP,
    *,
    title: str = "Cumulative relative lift over time",
    ylabel: str = "Relative lift vs control",
    percent: bool = True,
) -> Figure:
    """The cumulative plot's figure (drawn, not yet saved) at one layout."""
    fig = _figure(layout.width, 3.0 if layout is DESKTOP else 3.2)
    ax = fig.add_subplot()
    _style_axes(ax, layout)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
    xs = list(dates)
    est = [_number(v) for v in estimate]
    if low is not None and high is not None:
        lo = [_number(v) for v in low]
        hi = [_number(v) for v in high]
        ax.fill_between(xs, lo, hi, color=OKABE_ITO["sky_blue"], alpha=0.35, linewidth=0)
    ax.plot(xs, est, color=OKABE_ITO["blue"], linewidth=2, marker="o", markersize=3)
    ax.axhline(0, color="#333333", linewidth=1)
    if percent:
        ax.yaxis.set_major_formatter(_percent_axis())
    _date_axis(ax, layout)
    ax.set_ylabel(ylabel, fontsize=layout.font)
    ax.set_title(textwrap.fill(title, layout.wrap * 2), fontsize=layout.text(1), loc="left")
    return fig


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
    est = [v if _finite(v) else None for v in estimate]
    last = next((v for v in reversed(est) if v is not None), None)
    shown = fmt_pct(last, 1, signed=True) if percent else f"{last:.3g}" if last is not None else "—"
    return Plot.draw(
        lambda layout: cumulative_figure(
            dates, estimate, low, high, layout, title=title, ylabel=ylabel, percent=percent
        ),
        alt=f"{title}: {len(list(dates))} days; latest estimate {shown}.",
        caption=caption,
    )


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

    def build(layout: Layout) -> Figure:
        fig = _figure(min(6.0, layout.width), 2.8)
        ax = fig.add_subplot()
        _style_axes(ax, layout)
        palette = [OKABE_ITO[k] for k in ("blue", "orange", "bluish_green", "reddish_purple")]
        xs = range(len(labels))
        ax.bar(xs, values, color=[palette[i % len(palette)] for i in xs], width=0.6)
        if expected is not None:
            ax.scatter(
                list(xs), expected, marker="_", s=900, color="#000000", zorder=3, label="expected"
            )
            ax.legend(fontsize=layout.text(-1), frameon=False)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([textwrap.fill(x, layout.wrap // 2) for x in labels])
        if percent:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v * 100:.0f}%"))
        ax.set_ylabel(ylabel, fontsize=layout.font)
        ax.set_title(textwrap.fill(title, layout.wrap * 2), fontsize=layout.text(1), loc="left")
        return fig

    alt = f"{title}: " + ", ".join(
        f"{label} {value:.4g}" for label, value in zip(labels, values, strict=True)
    )
    return Plot.draw(build, alt=alt, caption=caption)


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
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    def build(layout: Layout) -> Figure:
        fig = _figure(min(7.0, layout.width), 3.0)
        ax = fig.add_subplot()
        _style_axes(ax, layout)
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.8)
        palette = [
            OKABE_ITO[k] for k in ("blue", "vermillion", "bluish_green", "orange", "reddish_purple")
        ]
        markers = ["o", "s", "^", "D", "v"]
        for i, (name, ys) in enumerate(series.items()):
            ax.plot(
                list(x),
                list(ys),
                label=name,
                color=palette[i % 5],
                marker=markers[i % 5],
                markersize=4,
            )
        if logy:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=7 if layout is DESKTOP else 4))
        if x_percent:
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v * 100:.1f}%"))
        if y_percent:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v * 100:.0f}%"))
        elif not logy:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax.set_xlabel(xlabel, fontsize=layout.font)
        ax.set_ylabel(ylabel, fontsize=layout.font)
        ax.set_title(textwrap.fill(title, layout.wrap * 2), fontsize=layout.text(1), loc="left")
        if len(series) > 1:
            ax.legend(fontsize=layout.text(-1), frameon=False)
        return fig

    return Plot.draw(build, alt=f"{title}: " + "; ".join(series), caption=caption)
