"""The experiment spec: loading, located errors, drafts, analysis inputs, JSON Schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from abkit.errors import ConfigError
from abkit.lifecycle.spec import load_specs, resolve_analysis_inputs, specs_from_text

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "experiments.toml"

MINIMAL = """\
[[experiments]]
key = "exp"
variants = ["control", "treatment"]
"""


def test_example_file_loads_with_every_section() -> None:
    spec = load_specs(EXAMPLE)["recommender-v3"]
    assert spec.status == "running"
    assert spec.stage == 0 and spec.experiment.traffic == 0.01
    assert [s.traffic for s in spec.ramp.stages] == [0.01, 0.05, 0.20, 0.50]
    assert spec.metrics.primary.name == "conversion_rate"
    assert spec.metrics.primary.mde == 0.10
    guard = spec.metrics.guardrail("errors_per_user")
    assert (guard.role, guard.direction, guard.margin) == ("guardrail", "lower", 0.05)
    assert spec.safety.guardrails == ("errors_per_user",)
    assert spec.safety.rollback_variant == "v1"
    assert spec.business.currency == "USD"


def test_entry_without_status_is_a_draft() -> None:
    spec = specs_from_text(MINIMAL)["exp"]
    assert spec.status == "draft"
    assert spec.experiment.status == "draft"


def test_ramp_sets_the_default_traffic_to_the_first_stage() -> None:
    text = MINIMAL + "ramp = { stages = [{ traffic = 0.01, min_hours = 1 }, { traffic = 0.5 }] }\n"
    spec = specs_from_text(text)["exp"]
    assert spec.experiment.traffic == 0.01 and spec.stage == 0


@pytest.mark.parametrize(
    ("addition", "field", "line", "words"),
    [
        ('readout = { method = "frequentist" }\n', "readout.method", 4, "must be one of"),
        (
            "ramp = { stages = [{ traffic = 0.2, min_hours = 1 }, { traffic = 0.1 }] }\n",
            "ramp.stages[1].traffic",
            4,
            "must increase",
        ),
        (
            'metrics = { primary = "conversion_rate", guardrails = ["nope"] }\n',
            "metrics.guardrails[0]",
            4,
            "unknown metric 'nope'",
        ),
        (
            'metrics = { primary = "conversion_rate" }\nsafety = { guardrails = ["x"] }\n',
            "safety.guardrails[0]",
            5,
            "not a guardrail",
        ),
        ('business = { period = "fortnight" }\n', "business.period", 4, "must be one of"),
        ("safety = { alpah = 0.1 }\n", "safety.alpah", 4, "did you mean 'alpha'"),
    ],
)
def test_errors_name_file_experiment_field_and_line(
    addition: str, field: str, line: int, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        specs_from_text(MINIMAL + addition, source="spec.toml")
    err = info.value
    assert err.location.file == "spec.toml"
    assert err.location.field == field
    assert err.location.row == line
    assert "experiment 'exp'" in err.message and words in err.message


def test_traffic_off_the_ramp_is_an_error() -> None:
    text = MINIMAL + 'traffic = 0.3\nstatus = "running"\nramp = { stages = [{ traffic = 0.1 }] }\n'
    with pytest.raises(ConfigError, match="not a ramp stage"):
        specs_from_text(text)


def test_assignment_errors_keep_their_location() -> None:
    text = MINIMAL.replace('variants = ["control", "treatment"]', 'variants = ["only"]')
    with pytest.raises(ConfigError, match="at least two variants"):
        specs_from_text(text, source="s.toml")


def test_empty_or_truncated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        load_specs(path)
    path.write_text(EXAMPLE.read_text()[:400])  # cut mid-entry
    with pytest.raises(ConfigError):
        load_specs(path)


def test_catalog_metrics_are_found_by_name(tmp_path: Path) -> None:
    (tmp_path / "metrics.toml").write_text(
        '[[metric]]\nname = "latency_errors"\ntype = "mean"\nevent = "error"\n'
        'aggregate = "count"\ndirection = "lower"\n'
    )
    spec_path = tmp_path / "experiments.toml"
    spec_path.write_text(
        MINIMAL + 'metrics = { catalog = "metrics.toml", primary = "conversion_rate", '
        'guardrails = ["latency_errors"] }\n'
    )
    spec = load_specs(spec_path)["exp"]
    assert spec.metrics.guardrails[0].name == "latency_errors"
    assert spec.metrics.guardrails[0].role == "guardrail"


def test_version_changes_with_the_entry_only() -> None:
    two = MINIMAL + '\n[[experiments]]\nkey = "other"\nvariants = ["a", "b"]\n'
    changed_other = two.replace('["a", "b"]', '["a", "c"]')
    changed_exp = two.replace('"treatment"', '"t2"')
    v = specs_from_text(two)["exp"].version
    assert specs_from_text(changed_other)["exp"].version == v
    assert specs_from_text(changed_exp)["exp"].version != v


def test_analysis_inputs_come_from_the_spec_and_flags_override() -> None:
    spec = load_specs(EXAMPLE)["recommender-v3"]
    inputs = resolve_analysis_inputs(spec)
    names = [(m.name, m.role) for m in inputs.metrics]
    assert names[0] == ("conversion_rate", "primary")
    assert ("errors_per_user", "guardrail") in names
    assert inputs.method == "fixed" and inputs.spec_version == spec.version
    kwargs = inputs.analyze_kwargs()
    assert kwargs["business"]["currency"] == "USD"
    overridden = resolve_analysis_inputs(spec, method="sequential", alpha=None)
    assert overridden.method == "sequential" and overridden.alpha == 0.05
    with pytest.raises(TypeError):
        resolve_analysis_inputs(spec, metric="x")
