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


def test_the_demo_spec_declares_the_guardrail(demo) -> None:
    spec = load_specs(Path(demo.spec))[demo.experiment]
    assert spec.metrics.guardrail("errors_per_user").role == "guardrail"
    assert spec.safety.guardrails == ("errors_per_user",)
