"""The executive report's sections, in display order.

Each section is one module exposing a :class:`~abkit.report.blocks.Section`; the tuple
:data:`EXECUTIVE` below is the registration (display order: the decision, harm first in a
roll-back, what the controller did, then the evidence, then the facts and the method). Adding a section is one
module plus one line here. :func:`executive` renders them for a model, each with its
heading, which is what the executive template displays.
"""

from __future__ import annotations

from collections.abc import Iterator

from abkit.report.blocks import HTMLBlock, Rendered, Section, e
from abkit.report.model import ReportModel
from abkit.report.sections import (
    actions,
    banner,
    charts,
    data,
    facts,
    harm,
    headline,
    howto,
    impact,
    quality,
    scorecard,
    segments,
)
from abkit.report.sections.banner import decision_banner
from abkit.report.sections.charts import cumulative, forest
from abkit.report.sections.data import footer, read_report_data, report_data, title_block
from abkit.report.sections.facts import experiment_facts
from abkit.report.sections.harm import harm as harm_cards
from abkit.report.sections.headline import headline as headline_kpi
from abkit.report.sections.howto import methodology
from abkit.report.sections.impact import impact as impact_cards
from abkit.report.sections.quality import data_quality
from abkit.report.sections.scorecard import scorecard as scorecard_table

EXECUTIVE: tuple[Section, ...] = (
    banner.SECTION,
    harm.SECTION,
    actions.SECTION,
    headline.SECTION,
    impact.SECTION,
    scorecard.SECTION,
    charts.FOREST,
    charts.CUMULATIVE,
    segments.TABLE,
    segments.PLOT,
    quality.SECTION,
    facts.SECTION,
    howto.SECTION,
    data.FOOTER,
    data.DATA,
)


def executive(model: ReportModel, sections: tuple[Section, ...] = EXECUTIVE) -> Iterator[Rendered]:
    """Each applicable section's heading (an ``<h2>``) and content, in order."""
    for section in sections:
        if not section.applies(model):
            continue
        heading = section.title(model)
        if heading:
            yield HTMLBlock(
                f'<h2 id="{e(section.name, quote=True)}" data-section="{e(section.name, quote=True)}">'
                f"{e(heading)}</h2>"
            )
        yield section.render(model)


__all__ = [
    "EXECUTIVE",
    "HTMLBlock",
    "Section",
    "cumulative",
    "data_quality",
    "decision_banner",
    "executive",
    "experiment_facts",
    "footer",
    "forest",
    "harm_cards",
    "headline_kpi",
    "impact_cards",
    "methodology",
    "read_report_data",
    "report_data",
    "scorecard_table",
    "title_block",
]
