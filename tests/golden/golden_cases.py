"""The fixed cases whose outputs must not change across refactors (issue 9).

``record.py`` writes the data and the outputs of the code at a given commit into
``tests/golden/data``; ``test_outputs.py`` re-runs the same cases on today's code and checks
that every number recorded then is still produced now (to 1e-12, relative).

The data are stored, not regenerated, so a change to the simulator cannot hide a change to
the analysis. Only stable public entry points are used: ``ingest`` on DataFrames,
``analyze`` with library metrics or a metrics TOML file, and ``render_report``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATA = Path(__file__).with_name("data")

# The demo's metric file as it was at the recording commit (the guardrail is declared here).
METRICS_TOML = """\
[[metric]]
builtin = "conversion_rate"
role = "primary"
mde = 0.10

[[metric]]
builtin = "revenue_per_user"

[[metric]]
builtin = "orders_per_user"

[[metric]]
builtin = "average_order_value"

[[metric]]
name = "errors_per_user"
type = "mean"
event = "error"
aggregate = "count"
window = "7d"
direction = "lower"
role = "guardrail"
mde = 0.05
"""

BUSINESS = {"metric": "revenue_per_user", "period": "year", "currency": "USD"}


@dataclass(frozen=True)
class Case:
    """One analysis whose output is pinned."""

    name: str
    experiment: str
    segments: tuple[str, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    report: bool = False


CASES = (
    Case("ship", "golden-ship", report=True),
    Case("breach", "golden-breach", report=True),
    Case("multiarm-segments", "golden-multiarm", segments=("platform",)),
    Case("multiarm-sequential", "golden-multiarm", kwargs={"method": "sequential"}),
    Case("multiarm-bayesian", "golden-multiarm", kwargs={"method": "bayesian", "cuped": False}),
)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def load_into(db_url: str, tmp: Path) -> None:
    """Ingest the stored rows of every golden experiment into the store at ``db_url``."""
    import pandas as pd

    from abkit.assignment.config import Experiment
    from abkit.ingest.ingestor import ingest
    from abkit.store.store import open_store

    store = open_store(db_url)
    try:
        configs = json.loads((DATA / "experiments.json").read_text(encoding="utf-8"))
        store.register_experiments([Experiment.from_dict(c) for c in configs])
        exposures = pd.DataFrame(list(read_jsonl(DATA / "exposures.jsonl.gz")))
        events = pd.DataFrame(list(read_jsonl(DATA / "events.jsonl.gz")))
        ingest(exposures, db=store, kind="exposures", source_name="golden-exposures")
        ingest(events, db=store, kind="events", source_name="golden-events")
    finally:
        store.close()


def run_case(case: Case, db_url: str, metrics_path: Path) -> dict[str, Any]:
    from abkit.analysis.analyze import analyze

    result = analyze(
        db_url,
        case.experiment,
        str(metrics_path),
        segments=list(case.segments),
        business=dict(BUSINESS),
        **case.kwargs,
    )
    return result.to_dict()


def render_case(case: Case, db_url: str, metrics_path: Path, out: Path) -> dict[str, Any]:
    from abkit.report.render import render_report
    from abkit.report.sections import read_report_data

    rendered = render_report(
        db_url, case.experiment, out=out, metrics=metrics_path, business=dict(BUSINESS)
    )
    return read_report_data(Path(rendered.path).read_text(encoding="utf-8"))


def numbers(tree: Any, path: str = "") -> list[tuple[str, float]]:
    """(path, value) of every finite number in a JSON tree (booleans excluded)."""
    out: list[tuple[str, float]] = []
    stack: list[tuple[str, Any]] = [(path, tree)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, bool) or node is None or isinstance(node, str):
            continue
        if isinstance(node, (int, float)):
            out.append((where, float(node)))
        elif isinstance(node, dict):
            stack.extend((f"{where}/{k}", v) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((f"{where}/{i}", v) for i, v in enumerate(node))
    return out
