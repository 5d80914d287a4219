"""Registry files (TOML and JSON): loading, global holdout, and located errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from abkit.assignment import Experiment, Registry, assign, load_experiments
from abkit.assignment.registry import registry_from_dict
from abkit.errors import ConfigError

TOML = """\
[holdout]
name = "holdout-2026"
fraction = 0.05

[[experiments]]
key = "ranker-v2"
description = "New ranking model on the homepage"
hypothesis = "v2 raises add-to-cart by 2%"
owner = "recsys-team"
tags = ["homepage", "ranking"]
traffic = 0.5
start = 2026-03-01T00:00:00Z
namespace = { name = "homepage", start = 0.0, end = 0.5 }
targeting = { not = { attr = "user_agent", regex = "(?i)bot|crawler|spider" } }
forced = { "qa-alice" = "treatment" }

[[experiments.variants]]
name = "control"
weight = 0.5
payload = { model = "ranker-v1" }

[[experiments.variants]]
name = "treatment"
weight = 0.5
payload = { model = "ranker-v2", temperature = 0.7 }

[[experiments]]
key = "banner"
namespace = { name = "homepage", start = 0.5, end = 1.0 }
variants = ["off", "on"]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_load_toml(tmp_path):
    reg = load_experiments(write(tmp_path, "reg.toml", TOML))
    assert isinstance(reg, Registry) and list(reg) == ["ranker-v2", "banner"]
    e = reg["ranker-v2"]
    assert e.owner == "recsys-team" and e.tags == ("homepage", "ranking")
    assert e.holdout == reg.holdout and reg["banner"].holdout == reg.holdout
    assert e.variant("treatment").payload == {"model": "ranker-v2", "temperature": 0.7}
    assert e.start.isoformat() == "2026-03-01T00:00:00+00:00"
    assert assign(e, "qa-alice").variant == "treatment"


def test_json_equals_toml(tmp_path):
    toml_reg = load_experiments(write(tmp_path, "reg.toml", TOML))
    as_json = json.dumps(toml_reg.to_dict(), indent=2)
    json_reg = load_experiments(write(tmp_path, "reg.json", as_json))
    assert dict(json_reg) == dict(toml_reg)
    assert json_reg.holdout == toml_reg.holdout
    # a bare list is accepted too
    bare = load_experiments(
        write(tmp_path, "bare.json", json.dumps([Experiment("x", variants=["a", "b"]).to_dict()]))
    )
    assert list(bare) == ["x"]


def _error(tmp_path, name, text) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_experiments(write(tmp_path, name, text))
    return info.value


def test_weights_not_summing_to_one_located(tmp_path):
    text = TOML.replace(
        'weight = 0.5\npayload = { model = "ranker-v2"',
        'weight = 0.4\npayload = { model = "ranker-v2"',
    )
    err = _error(tmp_path, "reg.toml", text)
    msg = str(err)
    assert msg.startswith(str(tmp_path / "reg.toml"))
    assert "experiment 'ranker-v2'" in msg and "sum to 0.9" in msg
    assert err.location.field == "weight"
    assert "(line 19)" in msg, msg  # the first weight line of that experiment


def test_duplicate_keys_and_variant_names(tmp_path):
    err = _error(tmp_path, "reg.toml", TOML.replace('key = "banner"', 'key = "ranker-v2"'))
    assert "duplicate experiment key" in str(err) and "(line 28)" in str(err)
    err = _error(
        tmp_path, "reg.toml", TOML.replace('variants = ["off", "on"]', 'variants = ["on", "on"]')
    )
    assert "duplicate variant names ['on']" in str(err) and "experiment 'banner'" in str(err)


def test_unknown_fields_located(tmp_path):
    err = _error(tmp_path, "reg.toml", TOML.replace("traffic = 0.5", "trafic = 0.5"))
    assert "unknown field 'trafic'" in str(err) and "did you mean 'traffic'" in str(err)
    assert "(line 11)" in str(err)
    err = _error(tmp_path, "reg.toml", "experimentz = []\n")
    assert "unknown top-level field 'experimentz'" in str(err)


def test_overlapping_namespace_ranges(tmp_path):
    err = _error(
        tmp_path, "reg.toml", TOML.replace("start = 0.5, end = 1.0", "start = 0.4, end = 1.0")
    )
    assert "overlaps experiment 'ranker-v2'" in str(err) and "experiment 'banner'" in str(err)
    # a stopped experiment frees its slice
    ok = TOML.replace("start = 0.5, end = 1.0 }", 'start = 0.4, end = 1.0 }\nstatus = "stopped"')
    assert len(load_experiments(write(tmp_path, "ok.toml", ok))) == 2


def test_bad_dates(tmp_path):
    err = _error(
        tmp_path,
        "reg.toml",
        TOML.replace("start = 2026-03-01T00:00:00Z", "start = 2026-03-01T00:00:00"),
    )
    assert "no UTC offset" in str(err) and err.location.field == "start" and "(line 12)" in str(err)
    err = _error(
        tmp_path,
        "reg.json",
        json.dumps(
            {"experiments": [{"key": "k", "variants": ["a", "b"], "end": "next week"}]}, indent=1
        ),
    )
    assert "'next week' is not an ISO-8601" in str(err) and "(line 9)" in str(err)


def test_shared_salt_rejected(tmp_path):
    text = TOML.replace('variants = ["off", "on"]', 'variants = ["off", "on"]\nsalt = "ranker-v2"')
    assert "same salt 'ranker-v2'" in str(_error(tmp_path, "reg.toml", text))


def test_syntax_errors_and_missing_file(tmp_path):
    assert "invalid TOML" in str(_error(tmp_path, "reg.toml", "[[experiments]\nkey = 1"))
    err = _error(tmp_path, "reg.json", '{"experiments": [\n  {"key": "k",}\n]}')
    assert "invalid JSON at line 2" in str(err)
    with pytest.raises(ConfigError, match="not found"):
        load_experiments(tmp_path / "missing.toml")


def test_unknown_experiment_key_lists_known(tmp_path):
    reg = load_experiments(write(tmp_path, "reg.toml", TOML))
    with pytest.raises(
        ConfigError, match=r"no experiment 'nope' in the registry \(known: banner, ranker-v2\)"
    ):
        reg["nope"]


def test_holdout_conflict_and_round_trip():
    reg = registry_from_dict(
        {
            "holdout": {"name": "h", "fraction": 0.1},
            "experiments": [{"key": "k", "variants": ["a", "b"]}],
        }
    )
    assert registry_from_dict(reg.to_dict()).to_dict() == reg.to_dict()
    with pytest.raises(ConfigError, match="different from the registry's global holdout"):
        registry_from_dict(
            {
                "holdout": {"name": "h", "fraction": 0.1},
                "experiments": [
                    {
                        "key": "k",
                        "variants": ["a", "b"],
                        "holdout": {"name": "other", "fraction": 0.1},
                    }
                ],
            }
        )


def test_toml_without_tomllib_gives_a_clear_message(tmp_path, monkeypatch):
    # Python 3.10 has no tomllib: without tomli the error must say what to do
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    err = _error(tmp_path, "reg.toml", TOML)
    assert "needs Python 3.11+ or the 'tomli' package" in str(err) and "JSON" in str(err)
    # JSON registries keep working
    path = write(
        tmp_path, "reg.json", json.dumps({"experiments": [{"key": "k", "variants": AB_JSON}]})
    )
    assert list(load_experiments(path)) == ["k"]


AB_JSON = ["control", "treatment"]
