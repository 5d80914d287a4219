"""The JSON Schema export of a spec file."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from abkit.lifecycle.schema import spec_json_schema

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "experiments.toml"


def test_json_schema_accepts_the_example_and_rejects_a_typo() -> None:
    import tomllib

    schema = spec_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = tomllib.loads(EXAMPLE.read_text())
    jsonschema.validate(data, schema)
    data["experiments"][0]["readout"]["method"] = "frequentist"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    json.dumps(schema)  # exportable
