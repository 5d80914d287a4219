"""One experiment, one verdict: analyze(), `abkit analyze --spec`, the controller."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from abkit.analysis.analyze import analyze
from abkit.demo import run_demo
from abkit.lifecycle.controller import evaluate
from abkit.lifecycle.spec import load_specs, resolve_analysis_inputs
from abkit.store.store import open_store
from abkit.testing.compare import assert_same_readout


@pytest.fixture(scope="module", params=["guardrail-breach", "ship"])
def demo(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("entry")
    result = run_demo(
        request.param, db=root / "demo.db", reports_dir=root, n_units=12_000, render=False
    )
    return result


def test_same_verdict_from_every_entry_point(demo) -> None:
    spec = load_specs(demo.spec)[demo.experiment]
    inputs = resolve_analysis_inputs(spec)
    python = analyze(demo.db_url, demo.experiment, **inputs.analyze_kwargs())
    expected = python.decision.verdict
    if demo.scenario == "guardrail-breach":
        assert expected == "roll back"  # the spec's guardrail decides (no metrics file, no flag)
    assert python.experiment.spec_version == spec.version  # the analysis states its spec
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "abkit",
            "analyze",
            "--db",
            demo.db_url,
            "--spec",
            str(demo.spec),
            "--experiment",
            demo.experiment,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["decision"]["verdict"] == expected
    controller = evaluate(spec, open_store(demo.db_url))
    assert controller.verdict == expected


def _demo_guardrails(demo) -> tuple[str, ...]:
    """v3 (slower) also declares the p95 latency guardrail (a quantile metric)."""
    if demo.scenario == "guardrail-breach":
        return ("errors_per_user", "p95_latency")
    return ("errors_per_user",)


def test_the_demo_spec_declares_the_guardrail(demo) -> None:
    spec = load_specs(Path(demo.spec))[demo.experiment]
    assert spec.metrics.guardrail("errors_per_user").role == "guardrail"
    assert spec.safety.guardrails == _demo_guardrails(demo)


@pytest.fixture(scope="module")
def loop_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    return run_demo(
        "guardrail-breach",
        db=root / "demo.db",
        reports_dir=root,
        loop=True,
        n_units=2_000,
        render=False,
    )


def test_python_analyze_reads_the_spec_the_store_recorded(loop_demo, tmp_path, monkeypatch) -> None:
    """No spec file in sight and no arguments: abkit.analyze reads the newest spec version
    the controller recorded, so a notebook far from the spec file gets the same verdict."""
    import abkit
    from abkit.lifecycle.audit import read_spec_versions
    from abkit.report.adapt import load_report

    demo = loop_demo
    monkeypatch.delenv("ABKIT_SPEC", raising=False)
    monkeypatch.chdir(tmp_path)
    spec = load_specs(demo.spec)[demo.experiment]
    expected = analyze(
        demo.db_url, demo.experiment, **resolve_analysis_inputs(spec).analyze_kwargs()
    )
    newest = read_spec_versions(open_store(demo.db_url), demo.experiment)[-1]["version"]
    assert newest == spec.version  # the controller recorded the file's final version

    result = abkit.analyze(demo.db_url, demo.experiment)
    assert result.decision.verdict == expected.decision.verdict
    assert result.experiment.spec_version == spec.version
    assert_same_readout(result.to_dict(), expected.to_dict(), rel=1e-12)
    report_result, model = load_report(demo.db_url, demo.experiment)
    assert report_result.decision.verdict == expected.decision.verdict
    assert report_result.experiment.spec_version == spec.version
    # the report shows what the controller did: the ramp advances, then the rollback
    assert tuple(a.action for a in model.actions) == demo.actions
    assert model.actions[-1].action == "rollback" and model.actions[-1].status == "stopped"


def test_python_analyze_reads_the_default_spec_file_and_arguments_override(
    demo, monkeypatch
) -> None:
    import abkit
    from abkit.lifecycle.declared import find_spec

    monkeypatch.delenv("ABKIT_SPEC", raising=False)
    monkeypatch.chdir(Path(demo.spec).parent)
    declared = find_spec(demo.experiment, db=demo.db_url)
    assert declared is not None and declared.origin == f"spec file {Path(demo.spec).name}"
    result = abkit.analyze(demo.db_url, demo.experiment, method="bayesian", alpha=0.1)
    assert (result.method, result.alpha) == ("bayesian", 0.1)  # arguments win ...
    # ... field by field: the guardrails still come from the spec
    assert tuple(g.metric for g in result.guardrails) == _demo_guardrails(demo)


def test_a_spec_that_does_not_declare_the_experiment_is_an_error(demo) -> None:
    from abkit.errors import ConfigError
    from abkit.lifecycle.declared import find_spec

    spec = load_specs(demo.spec)[demo.experiment]
    with pytest.raises(ConfigError, match="not 'elsewhere'"):
        find_spec("elsewhere", spec=spec)
    with pytest.raises(ConfigError, match="no experiment 'elsewhere'"):
        find_spec("elsewhere", spec=demo.spec)


def test_without_any_spec_analyze_is_the_plain_analysis(tmp_path, monkeypatch) -> None:
    import abkit
    from abkit.lifecycle.declared import find_spec
    from abkit.simulate import load_simulation, simulate_experiment

    monkeypatch.delenv("ABKIT_SPEC", raising=False)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    key = "no-spec"
    load_simulation(simulate_experiment(2_000, key=key, seed=3), url)
    assert find_spec(key, db=url) is None
    assert_same_readout(abkit.analyze(url, key).to_dict(), analyze(url, key).to_dict(), rel=1e-12)


def _template_defaults(name: str) -> dict[str, object]:
    """The parameters cell of a report template, run: what a report uses for every
    parameter ``abkit report`` was given no flag for."""
    folder = Path(__file__).resolve().parents[2] / "abkit" / "report" / "templates"
    notebook = json.loads((folder / name).read_text(encoding="utf-8"))
    cell = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    found: dict[str, object] = {}
    exec("".join(cell["source"]), {}, found)
    return found


@pytest.mark.parametrize("template", ["executive_report.ipynb", "analysis_deep_dive.ipynb"])
def test_a_report_without_flags_reads_the_spec_and_a_flag_amends_it(
    demo, tmp_path, template
) -> None:
    # the spec's readout is Bayesian at 0.2: a report with no flag must say so, and a
    # --period flag must amend the spec's business block, not replace it
    from abkit.report.adapt import load_report

    spec = tmp_path / "experiments.toml"
    text = Path(demo.spec).read_text(encoding="utf-8")
    readout = 'method = "bayesian"\nalpha = 0.2'
    spec.write_text(text.replace('method = "fixed"', readout), encoding="utf-8")
    for path in Path(demo.spec).parent.glob("*.metrics.toml"):  # the spec's catalog
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    defaults = _template_defaults(template)
    result, _ = load_report(
        demo.db_url,
        demo.experiment,
        alpha=defaults["alpha"],  # type: ignore[arg-type]
        method=defaults["method"],  # type: ignore[arg-type]
        business={"period": "week"},
        spec_path=str(spec),
    )
    assert (result.method, result.alpha) == ("bayesian", 0.2)
    declared = load_specs(spec)[demo.experiment].business
    assert result.impact is not None and declared is not None and declared.currency
    assert (result.impact.currency, result.impact.period) == (declared.currency, "week")
