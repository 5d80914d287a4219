"""JSON Schema (draft 2020-12) of a spec file, for editors (``abkit experiments schema``).

The schema describes shapes and vocabularies; the loader (:mod:`abkit.lifecycle.spec`)
remains the authority and checks what a schema cannot (weights summing to 1, guardrail
names declared, increasing ramp stages, namespace overlaps). Vocabularies come from
:mod:`abkit.vocabulary`, so the schema cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from abkit.analysis.impact import PERIODS
from abkit.lifecycle.spec import POLICIES
from abkit.vocabulary import CORRECTIONS, DIRECTIONS, EXPERIMENT_STATUSES, METHODS

_FRACTION: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 1}
_TEXT: dict[str, Any] = {"type": "string"}


def _object(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> Any:
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        out["required"] = list(required)
    out.update(extra)
    return out


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of a spec file (TOML files validate against their parsed data)."""
    metric_ref = {
        "oneOf": [
            {"type": "string", "description": "a metric name (define, catalog or built-in)"},
            _object(
                {
                    "metric": _TEXT,
                    "direction": {"enum": list(DIRECTIONS)},
                    "margin": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                    "mde": {"type": "number", "exclusiveMinimum": 0},
                    "covariates": {
                        "type": "array",
                        "items": {"type": "string", "pattern": "^(pre|prediction):.+"},
                        "description": "regression adjustment: 'pre:<metric>' (that metric's "
                        "pre-period) and 'prediction:<event type>' (a model's score, CUPAC)",
                    },
                },
                ("metric",),
            ),
        ]
    }
    variant = {
        "oneOf": [
            _TEXT,
            _object({"name": _TEXT, "weight": _FRACTION, "payload": {"type": "object"}}, ("name",)),
        ]
    }
    stage = _object(
        {
            "traffic": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "min_hours": {"type": "number", "minimum": 0},
            "min_units": {"type": "integer", "minimum": 1},
        },
        ("traffic",),
    )
    experiment = _object(
        {
            "key": {**_TEXT, "description": "stable experiment key (also the default salt)"},
            "owner": _TEXT,
            "description": _TEXT,
            "hypothesis": _TEXT,
            "tags": {"type": "array", "items": _TEXT},
            "status": {
                "enum": list(EXPERIMENT_STATUSES),
                "description": "absent: draft (validated, not served)",
            },
            "winner": {"type": ["string", "null"]},
            "start": {"type": ["string", "null"], "format": "date-time"},
            "end": {"type": ["string", "null"], "format": "date-time"},
            "variants": {"type": "array", "items": variant, "minItems": 2},
            "traffic": _FRACTION,
            "salt": _TEXT,
            "targeting": {"type": ["object", "null"]},
            "forced": {"type": "object", "additionalProperties": _TEXT},
            "namespace": {
                "oneOf": [
                    _TEXT,
                    _object({"name": _TEXT, "start": _FRACTION, "end": _FRACTION}, ("name",)),
                    {"type": "null"},
                ]
            },
            "holdout": {
                "oneOf": [
                    _object({"name": _TEXT, "fraction": _FRACTION}, ("name", "fraction")),
                    {"type": "null"},
                ]
            },
            "metrics": _object(
                {
                    "catalog": {**_TEXT, "description": "metrics TOML file, relative to the spec"},
                    "primary": metric_ref,
                    "secondary": {"type": "array", "items": metric_ref},
                    "guardrails": {"type": "array", "items": metric_ref},
                    "define": {"type": "array", "items": {"type": "object"}},
                    "mde": {"type": "number", "exclusiveMinimum": 0},
                    "planned_units": {"type": "integer", "minimum": 1},
                },
                ("primary",),
            ),
            "business": _object(
                {
                    "metric": _TEXT,
                    "value_per_unit": {"type": "number", "minimum": 0},
                    "currency": _TEXT,
                    "period": {"enum": list(PERIODS)},
                    "eligible_units_per_day": {"type": "number", "exclusiveMinimum": 0},
                }
            ),
            "readout": _object(
                {
                    "method": {"enum": list(METHODS)},
                    "alpha": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
                    "correction": {"enum": list(CORRECTIONS)},
                    "cuped": {"type": "boolean"},
                    "decision": {"enum": list(POLICIES)},
                }
            ),
            "ramp": _object(
                {"stages": {"type": "array", "items": stage, "minItems": 1}}, ("stages",)
            ),
            "safety": _object(
                {
                    "guardrails": {"type": "array", "items": _TEXT},
                    "alpha": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
                    "rollback_variant": _TEXT,
                    "action": {"enum": list(POLICIES)},
                    "tau_relative": {"type": "number", "exclusiveMinimum": 0},
                }
            ),
            "source": {
                "oneOf": [_TEXT, {"type": "object"}],
                "description": "where the data lives: a source file (relative to the spec "
                "file) or an inline source table (abkit.analysis.sources); none: abkit's store",
            },
        },
        ("key", "variants"),
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://abkit.dev/schema/experiment-spec.json",
        "title": "abkit experiment spec file",
        "type": "object",
        "properties": {
            "holdout": experiment["properties"]["holdout"],
            "experiments": {"type": "array", "items": experiment},
        },
        "additionalProperties": False,
    }
