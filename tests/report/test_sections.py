"""abkit.report.sections: escaping everywhere, wording that agrees across sections, money
with its currency, harm before gain, the registry, and the stylesheet's contrast."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

import fakes
import pytest
from fakes import RAW, T, hostile_model, row

from abkit.report import analyst
from abkit.report import sections as S
from abkit.report.adapt import from_analysis
from abkit.report.blocks import HTMLBlock, Section
from abkit.report.model import Impact, Quality
from abkit.report.render import check_offline, stylesheet
from abkit.results import Interval

SECTIONS = [(s.name, s.render) for s in S.EXECUTIVE] + [
    ("title", lambda m: S.title_block(m, f"title {T}")),
    ("title-default", lambda m: S.title_block(m)),
    ("srm-plot", analyst.srm_plot),
]


def _html(part) -> str:
    return part._repr_html_()


@pytest.mark.parametrize(("name", "section"), SECTIONS, ids=[n for n, _ in SECTIONS])
def test_every_user_field_is_escaped_in_every_section(name, section):
    html_text = _html(section(hostile_model()))
    assert RAW not in html_text, name
    assert "id=pwn" not in html_text.replace("id=pwn&gt;", ""), name  # no bare attribute
    assert check_offline(html_text) == [], name


def test_every_section_is_registered_once_in_display_order():
    names = [s.name for s in S.EXECUTIVE]
    assert len(names) == len(set(names))
    assert names.index("banner") < names.index("harm") < names.index("headline")
    assert names.index("headline") < names.index("impact") < names.index("scorecard")
    assert names[-2:] == ["footer", "data"]


def test_a_new_section_is_one_object_and_one_registration():
    extra = Section("note", "A note", lambda model: HTMLBlock("<p>hello</p>"))
    parts = [_html(p) for p in S.executive(hostile_model(), (*TEXT_ONLY, extra))]
    assert parts[-2:] == ['<h2 id="note" data-section="note">A note</h2>', "<p>hello</p>"]


# The sections without a chart: drawing is the slow part and has its own tests.
TEXT_ONLY = tuple(s for s in S.EXECUTIVE if s.name not in ("forest", "cumulative", "segment-plot"))


def _page(model) -> str:
    return "".join(_html(p) for p in S.executive(model, TEXT_ONLY))


def _sections_of(model) -> list[str]:
    return [
        m
        for part in S.executive(model, TEXT_ONLY)
        for m in re.findall(r'data-section="([^"]+)"', _html(part))
    ]


def test_harm_comes_before_gain_in_a_roll_back():
    model = from_analysis(
        fakes.result("roll back", error_lift=0.22), values={"errors_per_user": 0.4}
    )
    order = _sections_of(model)
    assert order.index("harm") < order.index("headline") < order.index("impact")
    page = _page(model)
    assert page.index("Harm: errors per user") < page.index(">What it would have brought</h2>")
    assert page.index(">What it would have brought</h2>") < page.index(">What was given up")
    # The banner's first supporting line is the harm, priced, with users affected.
    first = model.decision.why[0]
    assert first.startswith("Errors per user rose") and "users" in first and "$" in first
    assert "harm" not in _sections_of(from_analysis(fakes.result("ship")))


def test_the_cumulative_chart_follows_the_metric_that_decided():
    rolled = from_analysis(fakes.result("roll back", error_lift=0.22))
    assert rolled.daily[0].metric == "errors per user"
    shipped = from_analysis(fakes.result("ship"))
    assert shipped.daily[0].metric == "conversion rate"


class _Money(HTMLParser):
    """Text of every element marked ``data-unit="currency"`` (its whole subtree)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if self.depth:
            self.depth += 1
        elif dict(attrs).get("data-unit") == "currency":
            self.depth = 1
            self.texts.append("")

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.texts[-1] += data


NUMBER = re.compile(r"[−+]?[\d.,]+[KMBT]?")


@pytest.mark.parametrize("currency", ["USD", "EUR", "CHF", ""])
@pytest.mark.parametrize("scenario", ["ship", "roll back"])
def test_currency_on_every_money_figure(currency, scenario):
    result = fakes.result(scenario, error_lift=0.22, currency=currency)
    model = from_analysis(result, values={"errors_per_user": 0.4})
    parser = _Money()
    parser.feed(_page(model))
    symbol = {"USD": "$", "EUR": "€", "CHF": "CHF", "": "¤"}[currency]
    assert len(parser.texts) >= 2
    for text in parser.texts:
        for match in NUMBER.finditer(text):
            figure = match.group(0)
            if not re.search(r"\d", figure) or figure.strip(",.") in ("", "95"):
                continue
            around = text[max(0, match.start() - 3) : match.end() + 4]
            assert symbol in around, (text, figure)


def test_money_metric_of_unknown_currency_is_marked_and_explained():
    model = from_analysis(fakes.result("ship", currency=""))
    page = _html(S.scorecard_table(model))
    assert "¤7.01" in page and "the events carry no currency" in page


def test_absolute_figures_follow_one_significant_digit_rule():
    model = from_analysis(fakes.result("ship", currency="USD"))
    page = _html(S.scorecard_table(model))
    assert "$7.01" in page and "$7.71" in page and "+$0.701" in page
    assert "+0.0" not in page.replace("+0.0%", "")


def test_significance_words_agree_with_the_forest_plot():
    """A significant rise of a lower-is-better metric is "worse" in words, never "▲"."""
    harm = row("errors", role="guardrail", higher_is_better=False)
    win = row("conversion")
    page = S.scorecard_table(hostile_model(), rows=[harm, win]).html
    assert "significant: worse" in page and "significant: better" in page
    assert "chip-significant-down" in page and "chip-significant-up" in page
    assert "▲" not in page and "▼" not in page
    caption = S.forest(hostile_model()).caption
    assert "▲" in caption and "good direction" in caption


def test_an_unadjusted_interval_that_disagrees_is_marked():
    """Holm says not significant, the raw interval excludes 0: a dagger and a sentence."""
    odd = row("orders", significant=False, p_value=0.08, rel_ci=Interval(0.005, 0.137))
    fine = row("revenue")
    model = dataclasses.replace(hostile_model(), correction="holm")
    page = S.scorecard_table(model, rows=[odd, fine]).html
    assert page.count("†") == 2  # the cell and the caption
    assert "not significant once the several metrics are accounted for" in page
    assert "†" not in S.scorecard_table(model, rows=[fine]).html


def test_the_adjustment_note_names_the_families_analyze_corrects():
    # analyze corrects the primary across its arms and the secondaries together; the
    # guardrails are read alone: "adjusted for 5 comparisons" would be wrong
    rows = [
        row("conversion"),
        *(row(name, role="secondary") for name in ("orders", "revenue", "clicks")),
        row("errors", role="guardrail", higher_is_better=False),
    ]
    model = dataclasses.replace(hostile_model(), correction="holm")
    page = S.scorecard_table(model, rows=rows).html
    assert "within the secondary metrics&#x27; comparisons (3)" in page or (
        "within the secondary metrics' comparisons (3)" in page
    )
    assert "guardrails are not adjusted" in page and "5 comparisons" not in page


def test_headline_chip_agrees_with_a_keep_running_banner():
    early = from_analysis(fakes.result("keep running", conversion_lift=0.10))
    assert early.primary.significant and early.decision.state == "keep running"
    page = _html(S.headline_kpi(early))
    assert "not yet conclusive" in page and "significant: better" not in page
    shipped = _html(S.headline_kpi(from_analysis(fakes.result("ship"))))
    assert "significant: better" in shipped


def test_methodology_is_plain_words_first_then_statistics():
    model = dataclasses.replace(hostile_model(), correction="holm")
    page = S.methodology(model).html
    assert page.index("The box at the top") < page.index("Statistical details")
    assert page.index("Statistical details") < page.index("(Holm)")
    assert "chance of any false alarm" in page and "O&#x27;Brien-Fleming" in page
    bh = S.methodology(dataclasses.replace(model, correction="bh")).html
    assert "Benjamini-Hochberg" in bh and "share of false alarms" in bh
    seq = S.methodology(dataclasses.replace(model, method="sequential")).html
    assert "O&#x27;Brien-Fleming" not in seq and "always-valid" in seq
    assert "t1 &lt;i" in page  # the analysis' technical reasons live here


def test_segments_show_in_the_executive_report_when_asked():
    asked = from_analysis(fakes.result("ship", segments=True), segments=("platform",))
    names = _sections_of(asked)
    assert "segments" in names
    page = _page(asked)
    assert "platform: android $5" in page
    assert "segments" not in _sections_of(from_analysis(fakes.result("ship", segments=True)))


def _quality(collected: int, needed: int, days: float | None) -> Quality:
    return Quality(
        counts={"a": collected // 2, "b": collected - collected // 2},
        expected_shares={"a": 0.5, "b": 0.5},
        srm_p_value=0.9,
        srm_ok=True,
        sample_collected=collected,
        sample_needed=needed,
        sample_target="10.0% relative change with 80% power",
        days_remaining=days,
    )


def test_sample_collected_against_needed_in_words():
    """Short of the plan says how far and how long; past it says "at least", no days."""
    base = hostile_model()
    short = S.data_quality(dataclasses.replace(base, quality=_quality(190, 1000, 3.5)))
    assert "190 units collected of the 1,000 planned to detect a 10.0%" in short.html
    assert "19%" in short.html and "≈ 3.5 days more" in short.html
    assert "at least" not in short.html
    done = S.data_quality(dataclasses.replace(base, quality=_quality(4000, 1000, None)))
    assert "4,000 units collected, at least the 1,000 planned" in done.html
    assert "100%" in done.html and "more at current traffic" not in done.html


@pytest.mark.parametrize("status", ["pass", "fail", "inconclusive"])
def test_guardrail_chip_word_and_colour_agree(status):
    guard = row("errors", role="guardrail", guardrail_status=status)
    page = S.scorecard_table(hostile_model(), rows=[guard]).html
    assert f'<span class="chip chip-{status}">{status}</span>' in page


def test_impact_interval_reads_low_to_high():
    imp = Impact("revenue", "b", "month", 1500.0, Interval(-200.0, 3200.0), "", "USD", True)
    page = re.sub(
        r"<[^>]+>", "", S.impact_cards(dataclasses.replace(hostile_model(), impact=(imp,))).html
    )
    assert "+$1,500" in page and "interval [−$200, +$3,200]" in page
    assert "Projected change per month if shipped anyway (not recommended) (from revenue)" in page


def _luminance(hex_colour: str) -> float:
    """WCAG 2.x relative luminance of ``#rgb`` / ``#rrggbb``."""
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    channels = [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_text_colours_meet_wcag_aa_contrast():
    """Every chip, banner and muted text reaches 4.5:1 against its background (WCAG AA)."""
    css = re.sub(r"/\*.*?\*/", "", stylesheet(), flags=re.S)
    variables = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{3,6})", css))

    def colour(value: str) -> str:
        value = value.strip()
        found = re.fullmatch(r"var\(--([\w-]+)\)", value)
        return variables[found.group(1)] if found else value

    checked = 0
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        props = dict((k.strip(), v.strip()) for k, v in re.findall(r"([\w-]+)\s*:\s*([^;]+)", body))
        if "chip-" in selectors and "color" in props and "background" in props:
            ratio = _contrast(colour(props["color"]), colour(props["background"]))
            assert ratio >= 4.5, (selectors.strip(), ratio)
            checked += 1
        if selectors.strip().startswith(".abkit-verdict-") and "background" in props:
            ratio = _contrast(variables["ink"], colour(props["background"]))
            assert ratio >= 4.5, (selectors.strip(), ratio)
            checked += 1
    assert checked >= 10  # five chip rules and five states
    for bg in ("#ffffff", variables["panel"], variables["green-bg"], variables["red-bg"]):
        assert _contrast(variables["muted"], bg) >= 4.5, bg  # captions, notes, reasons


def test_deep_dive_segment_table_escapes_segment_names_and_values():
    result = fakes.result("ship", segments=True)
    hostile = tuple(
        dataclasses.replace(s, segment=f"country {T}", value=f"value {T}") for s in result.segments
    )
    page = analyst.segment_table(dataclasses.replace(result, segments=hostile)).html
    assert RAW not in page and "value &lt;i id=pwn&gt;" in page


def test_the_controller_timeline_shows_each_action_with_what_it_set_and_why():
    from datetime import datetime, timezone

    from abkit.lifecycle.audit import AuditEntry

    def entry(hour, action, changes, reason, actor="controller"):
        return AuditEntry(
            experiment="exp",
            action=action,
            actor=actor,
            at=datetime(2026, 1, 2, hour, tzinfo=timezone.utc),
            from_version="a",
            to_version="b",
            reason=reason,
            evidence={"changes": changes},
        )

    audit = [
        entry(6, "advance", {"traffic": 0.05}, "stage 1 met its minimum; no guardrail harm"),
        entry(12, "rollback", {"status": "stopped", "winner": "control"}, "errors_per_user harm"),
        entry(13, "pause", {}, "checking logs", actor="manual:ana"),
    ]
    model = from_analysis(fakes.result("roll back", error_lift=0.22), audit=audit)
    assert [a.action for a in model.actions] == ["advance", "rollback", "pause"]
    page = _page(model)
    assert _sections_of(model).index("actions") == _sections_of(model).index("harm") + 1
    rows = re.findall(r'<tr data-action="([^"]+)">(.*?)</tr>', page)
    assert [r[0] for r in rows] == ["advance", "rollback", "pause"]
    assert "2026-01-02 06:00 UTC" in rows[0][1] and "traffic 5%" in rows[0][1]
    assert "rolled back" in rows[1][1] and "status stopped, serving control" in rows[1][1]
    assert "automatic" in rows[1][1] and "manual:ana" in rows[2][1]
    # no audit trail (an experiment the controller never touched): no section
    assert "actions" not in _sections_of(from_analysis(fakes.result("roll back", error_lift=0.22)))


def test_a_roll_back_whose_primary_also_fell_gives_nothing_up():
    # a guardrail breach where the primary metric fell too: rolling back avoids a loss
    fell = from_analysis(fakes.result("roll back", conversion_lift=-0.10, error_lift=0.5))
    why = " ".join(fell.decision.why)
    assert "Nothing is given up by rolling back" in why and "Given up by" not in why
    rose = from_analysis(fakes.result("roll back", conversion_lift=0.10, error_lift=0.5))
    assert "Given up by rolling back" in " ".join(rose.decision.why)


def test_the_cuped_sentence_needs_an_adjusted_readout():
    model = from_analysis(fakes.result("ship"))  # the option on, no readout adjusted
    assert not model.cuped
