"""Refactors keep every number: today's outputs contain every number recorded at 2bb3561.

The outputs of ``analyze(...).to_dict()`` and of the executive report's embedded data were
recorded (``record.py``) for three experiments (a ship, a guardrail breach, a three-arm test
with segments, sequential and Bayesian readouts) on SQLite, DuckDB and PostgreSQL. Field names
may change in a redesign, and new fields may appear; a recorded number may not disappear or
move by more than 1e-12 (relative). Text is not compared: the reports' wording changed on
purpose (issue 14).

Deliberate changes are listed in ``DELIBERATE`` with their reason. ``resolve_cap`` now uses
the analysis SQL's nearest-rank definition, which ``analyze`` always used, so it moves no
number here; the CUPED-adjusted means moved to fields of their own in the analysis output
(the raw means are new numbers there, the adjusted ones remain).
"""

from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from golden_cases import CASES, DATA, METRICS_TOML, load_into, numbers, render_case, run_case

RECORDED: dict[str, Any] = json.loads(
    gzip.decompress((DATA / "outputs.json.gz").read_bytes()).decode("utf-8")
)
TOLERANCE = 1e-12


# Recorded numbers that changed on purpose: output kind -> (regular expression on the
# recorded path, why). Paths are those of the 2bb3561 output, so a pattern names the old field.
DELIBERATE: dict[str, tuple[tuple[str, str], ...]] = {
    "analyze": (
        (
            r"^/impact/baseline_total$",
            "issue 9: the baseline of the business impact is the raw control mean per unit, "
            "no longer the CUPED-adjusted one (the projected change itself is unchanged)",
        ),
        (
            r"^/decision/(sample_needed|days_needed)$",
            "the sample an always-valid (sequential) readout needs for 80% power is the plan "
            "inflated for its wider boundary, not the fixed test's (decision.power_needed)",
        ),
    ),
    "report": (
        (
            r"^/metrics/\d+/(control_mean|treatment_mean)$",
            "issue 9: the scorecard showed CUPED-adjusted means as Control/Treatment; it now "
            "shows the raw arm means (the adjusted effect is unchanged)",
        ),
        (
            r"^/metrics/\d+/(abs|rel)_(low|high)$",
            "issues 14/15: where a multiplicity correction applies, the scorecard shows the "
            "intervals consistent with it (the per-comparison ones are in the analysis output)",
        ),
        (
            r"^/daily/",
            "issue 14: the cumulative chart follows the metric that decided (the guardrail in "
            "a roll-back); every daily series is still checked in the analysis output",
        ),
    ),
}


def missing_numbers(old: Any, new: Any, kind: str = "analyze") -> list[tuple[str, float]]:
    """(path, value) of numbers of ``old`` without a partner in ``new`` (multiset, 1e-12)."""
    want = sorted(numbers(old), key=lambda item: item[1])
    have = sorted(value for _, value in numbers(new))
    lost: list[tuple[str, float]] = []
    j = 0
    for where, value in want:
        tol = TOLERANCE * max(1.0, abs(value))
        while j < len(have) and have[j] < value - tol:
            j += 1
        if j < len(have) and math.isclose(have[j], value, rel_tol=TOLERANCE, abs_tol=TOLERANCE):
            j += 1
        elif not any(re.search(pattern, where) for pattern, _ in DELIBERATE[kind]):
            lost.append((where, value))
    return lost


def test_missing_numbers_detects_a_change() -> None:
    assert missing_numbers({"a": [1.0, 2.0]}, {"b": 2.0, "c": [1.0, 5.0]}) == []
    assert missing_numbers({"a": [1.0, 2.0]}, {"b": 2.0 + 1e-9, "c": 1.0}) == [("/a/1", 2.0)]
    assert missing_numbers({"a": [3.0, 3.0]}, {"a": [3.0]}) == [("/a/0", 3.0)]


@pytest.fixture(scope="module", params=["sqlite", "duckdb", "postgresql"])
def golden_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str, Path]:
    tmp = tmp_path_factory.mktemp(f"golden-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'g.db'}"
    elif request.param == "duckdb":
        url = f"duckdb:///{tmp / 'g.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    load_into(url, tmp)
    metrics_path = tmp / "metrics.toml"
    metrics_path.write_text(METRICS_TOML, encoding="utf-8")
    return request.param, url, metrics_path


def test_reports_keep_every_number(golden_store: tuple[str, str, Path], tmp_path: Path) -> None:
    dialect, url, metrics_path = golden_store
    for case in CASES:
        if not case.report:
            continue
        new = render_case(case, url, metrics_path, tmp_path / f"{case.name}.html")
        lost = missing_numbers(RECORDED[f"{dialect}/{case.name}/report"], new, "report")
        assert not lost, f"{dialect}/{case.name}: report lost {len(lost)} numbers: {lost[:10]}"


def test_analyses_keep_every_number(golden_store: tuple[str, str, Path]) -> None:
    dialect, url, metrics_path = golden_store
    for case in CASES:
        new = run_case(case, url, metrics_path)
        lost = missing_numbers(RECORDED[f"{dialect}/{case.name}/analyze"], new)
        assert not lost, f"{dialect}/{case.name}: analysis lost {len(lost)} numbers: {lost[:10]}"
