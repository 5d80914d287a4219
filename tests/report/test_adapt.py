"""abkit.report.adapt: the report model from the analysis result alone."""

from __future__ import annotations

import dataclasses

import fakes
import pytest

from abkit.errors import ConfigError
from abkit.report import adapt
from abkit.report import sections as S
from abkit.report.adapt import from_analysis, load_report, resolve_db_url


def test_the_model_comes_from_the_result_alone():
    """No store, no metric file, no planner: directions, units, plan and guardrail
    status are the analysis' own (issue 9)."""
    result = fakes.result("roll back", error_lift=0.22)
    model = from_analysis(result)
    rows = {r.metric: r for r in model.metrics}
    assert [r.role for r in model.metrics] == ["primary", "secondary", "guardrail"]
    assert rows["errors_per_user"].higher_is_better is False
    assert rows["errors_per_user"].guardrail_status == result.guardrails[0].status == "fail"
    assert rows["revenue_per_user"].unit == "currency"
    # The metric's currency is unknown, so the impact's (the one asked for) applies.
    assert rows["revenue_per_user"].currency == "USD"
    assert model.quality.sample_needed == result.plan.n_total
    assert model.quality.sample_target == result.plan.target
    assert model.decision.decided_by == ("errors_per_user", "v2")
    assert model.decisive.metric == "errors_per_user"


def test_guardrail_status_is_read_not_recomputed():
    """A guardrail the analysis calls inconclusive stays inconclusive, whatever its interval."""
    result = fakes.result("ship", guardrail_status="inconclusive")
    row = next(r for r in from_analysis(result).metrics if r.role == "guardrail")
    assert row.guardrail_status == "inconclusive"


def test_raw_means_and_the_adjusted_effect_are_kept_apart():
    result = fakes.result("ship")
    lift = result.metrics[1]
    cuped = dataclasses.replace(lift, control_mean_adjusted=7.2, variance_reduction=0.3)
    result = dataclasses.replace(result, metrics=(result.metrics[0], cuped, result.metrics[2]))
    row = next(r for r in from_analysis(result).metrics if r.metric == "revenue_per_user")
    assert row.control_mean == lift.control_mean and row.cuped
    assert row.abs_lift == lift.abs_lift


def test_an_as_of_readout_is_stated():
    result = fakes.result("ship")
    facts = dataclasses.replace(result.experiment, until="2026-01-10T00:00:00+00:00")
    model = from_analysis(dataclasses.replace(result, experiment=facts))
    assert model.facts.until == "2026-01-10 00:00 UTC"
    assert "Readout as of 2026-01-10 00:00 UTC" in S.title_block(model).html
    assert "as of 2026-01-10 00:00 UTC" in S.experiment_facts(model).html


def test_load_report_passes_the_window_and_horizon(monkeypatch, tmp_path):
    seen = {}

    def fake_analyze(db, experiment, metrics, **options):
        seen.update(options, db=db, experiment=experiment, metrics=metrics)
        return fakes.result("cannot finish", conversion_lift=0.005)

    # the report analyses through the spec's path (lifecycle.declared), as `abkit analyze`
    monkeypatch.setattr("abkit.lifecycle.declared.analyze_inputs", fake_analyze)
    db = tmp_path / "x.db"
    db.write_bytes(b"")
    _, model = load_report(
        f"sqlite:///{db}", "k", since="2026-01-02", until="2026-01-09", horizon_days=10_000
    )
    assert seen["since"] == "2026-01-02" and seen["until"] == "2026-01-09"
    assert model.horizon_days == 10_000 and model.decision.state == "keep running"


def test_default_database_of_a_notebook(tmp_path, monkeypatch):
    monkeypatch.delenv("ABKIT_DATABASE_URL", raising=False)
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    monkeypatch.chdir(nb_dir)
    with pytest.raises(ConfigError, match=r"run `abkit demo`") as info:
        resolve_db_url(None)
    assert info.value.location.field == "db_url"
    assert list(nb_dir.iterdir()) == []  # nothing created while looking
    # The README's demo, run at the repository root, is found from notebooks/.
    (tmp_path / "abkit-demo.db").write_bytes(b"")
    assert resolve_db_url(None) == f"sqlite:///{(tmp_path / 'abkit-demo.db').resolve()}"
    # ./abkit.db wins over the demo's file; the environment wins over both.
    (nb_dir / "abkit.db").write_bytes(b"")
    assert resolve_db_url(None) == f"sqlite:///{(nb_dir / 'abkit.db').resolve()}"
    monkeypatch.setenv("ABKIT_DATABASE_URL", "postgresql://u@h/db")
    assert resolve_db_url(None) == "postgresql://u@h/db"


def test_a_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path):
    missing = tmp_path / "nope.db"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_db_url(f"sqlite:///{missing}")
    assert not missing.exists()
    assert resolve_db_url("sqlite://") == "sqlite://"  # in-memory is not a file


def test_adapt_never_imports_the_store():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(adapt))
    names = {
        alias.name if isinstance(node, ast.Import) else node.module
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert not any(n and n.startswith("abkit.store") for n in names)
    # Metric definitions come typed with the result (a type-only import); never re-read.
    source = inspect.getsource(adapt)
    assert "load_metrics" not in source and "builtin_metric" not in source
    assert "power_needed" not in source and "open_store" not in source


def test_adjusted_intervals_are_shown_when_the_analysis_has_them():
    from abkit.results import Interval

    result = fakes.result("ship")
    lift = result.metrics[1]
    wide = Interval(-0.01, 0.25)
    adjusted = dataclasses.replace(
        lift, rel_ci_adjusted=wide, abs_ci_adjusted=Interval(-0.1, 1.5), significant=False
    )
    result = dataclasses.replace(result, metrics=(result.metrics[0], adjusted, result.metrics[2]))
    row = next(r for r in from_analysis(result).metrics if r.metric == "revenue_per_user")
    assert row.rel_ci == wide and row.interval_adjusted and row.interval_consistent
    page = S.scorecard_table(from_analysis(result)).html
    assert "widened for the several metrics tested" in page and "†" not in page


def test_an_as_of_report_shows_only_the_actions_before_its_time():
    from datetime import datetime, timezone

    from abkit.lifecycle.audit import AuditEntry
    from abkit.report.adapt import _as_of

    def at(day: int) -> AuditEntry:
        when = datetime(2026, 11, day, tzinfo=timezone.utc)
        return AuditEntry("k", "advance", "controller", when, "a", "b", "", {})

    entries = [at(18), at(20), at(21)]
    assert [e.at.day for e in _as_of(entries, "2026-11-19T06:00:00+00:00")] == [18]
    assert [e.at.day for e in _as_of(entries, "2026-11-19T06:00:00Z")] == [18]
    assert _as_of(entries, None) == entries
