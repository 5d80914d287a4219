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


# --- hostile files: a located ConfigError, never an unexpected exception ---------------
def _rule(depth: int) -> dict:
    rule: dict = {"attr": "a", "eq": 1}
    for _ in range(depth):
        rule = {"not": rule}
    return rule


HOSTILE = {
    "deep.json": ('{"experiments": ' + "[" * 100_000 + "]" * 100_000 + "}", "nesting too deep"),
    "deep.toml": ("x = " + "[" * 100_000 + "]" * 100_000 + "\n", "nesting too deep"),
    "rule.json": (
        json.dumps(
            {"experiments": [{"key": "k", "variants": ["a", "b"], "targeting": _rule(600)}]}
        ),
        "nested more than 64 levels",
    ),
    "rule40.json": (
        json.dumps({"experiments": [{"key": "k", "variants": ["a", "b"], "targeting": _rule(40)}]}),
        "more than 32 levels",
    ),
    "digits.json": (
        '{"experiments": [{"key": "k", "variants": ["a", "b"], "traffic": ' + "9" * 5000 + "}]}",
        "line 1: a number with thousands of digits",
    ),
    "digits.toml": (
        '[[experiments]]\nkey = "k"\nvariants = ["a", "b"]\ntraffic = ' + "9" * 5000 + "\n",
        "line 4: a number with thousands of digits",
    ),
    "digits4000.json": (
        '{"experiments": [{"key": "k", "variants": ["a", "b"], "traffic": ' + "9" * 4000 + "}]}",
        "traffic must be in [0, 1], got an integer too large",
    ),
    "utf8.toml": (b'[[experiments]]\nkey = "\xff"\n', "line 2: not valid UTF-8"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_registry_files_give_a_located_config_error(tmp_path, name):
    content, message = HOSTILE[name]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_experiments(path)
    assert message in str(info.value) and str(info.value).startswith(str(path))


def _namespaced(n: int) -> str:
    width = 1 / (n // 10 + 1)
    return json.dumps(
        {
            "experiments": [
                {
                    "key": f"e{i}",
                    "variants": ["a", "b"],
                    "namespace": {
                        "name": f"ns{i % 10}",
                        "start": (i // 10) * width,
                        "end": (i // 10 + 1) * width,
                    },
                }
                for i in range(n)
            ]
        }
    )


def test_thousands_of_namespaced_experiments_load_in_near_linear_time():
    import gc
    import time

    from abkit.assignment.registry import parse_registry

    def best(text: str) -> float:
        times = []
        for _ in range(3):  # CPU time of this thread: other processes' load does not count
            gc.collect()
            gc.disable()  # a full collection walks the whole test process, not the registry
            try:
                t = time.thread_time()
                parse_registry(text)
                times.append(time.thread_time() - t)
            finally:
                gc.enable()
        return min(times)

    small, large = best(_namespaced(1000)), best(_namespaced(3000))
    # linear: 3x; the former pairwise check: 9x
    assert large / small < 5, (small, large)


def test_overlap_found_among_many_slices_names_the_later_experiment():
    data = json.loads(_namespaced(300))
    data["experiments"][250]["namespace"]["start"] -= 0.001  # into experiment 240's slice
    with pytest.raises(ConfigError, match=r"experiment 'e250'.*overlaps experiment 'e240'"):
        registry_from_dict(data)


# --- the spec's sections and the raw entries with their lines ----------------------------
SPEC = """\
[[experiments]]
key = "recommender"
status = "running"
variants = ["v1", "v3"]

[experiments.metrics]
primary = "conversion_rate"
guardrails = [{ metric = "errors_per_user", direction = "lower", margin = 0.05 }]

[experiments.ramp]
stages = [
  { traffic = 0.01, min_hours = 24 },
  { traffic = 0.05, min_hours = 24 },
]

[experiments.safety]
rollback_variant = "v1"

[[experiments]]
key = "banner"
variants = ["off", "on"]
source = { table = "events" }
"""


def test_spec_sections_are_accepted_and_handed_over_with_their_lines(tmp_path):
    from abkit.assignment.registry import SPEC_SECTIONS, read_registry

    doc = read_registry(write(tmp_path, "spec.toml", SPEC))
    assert list(doc.registry) == ["recommender", "banner"]
    assert set(SPEC_SECTIONS) >= {"metrics", "business", "readout", "ramp", "safety", "source"}
    raw = doc.entries["recommender"]
    assert raw.data["ramp"]["stages"][1]["traffic"] == 0.05
    assert raw.line() == 1 and raw.line("key") == 2
    assert raw.line("ramp.stages[1].traffic") == 13
    assert raw.line(("metrics", "guardrails", 0, "margin")) == 8
    assert raw.line("safety.rollback_variant") == 17
    assert raw.line("safety.missing_field") == 16  # the nearest written parent
    assert doc.entries["banner"].line("source.table") == 22
    err = raw.error("must be below the next stage", "ramp.stages[1].traffic")
    assert str(err) == (
        f"{tmp_path / 'spec.toml'}, field 'ramp.stages[1].traffic': experiment 'recommender' "
        "(line 13): ramp.stages[1].traffic: must be below the next stage"
    )
    assert len(doc.content_hash) == 64


def test_json_spec_lines_match_the_toml_ones(tmp_path):
    import tomllib

    from abkit.assignment.registry import read_registry

    text = json.dumps(tomllib.loads(SPEC), indent=2)
    doc = read_registry(write(tmp_path, "spec.json", text))
    lines = text.splitlines()
    raw = doc.entries["recommender"]
    assert '"traffic": 0.05' in lines[raw.line("ramp.stages[1].traffic") - 1]
    assert '"margin": 0.05' in lines[raw.line("metrics.guardrails[0].margin") - 1]


def test_unknown_fields_beside_the_sections_are_still_errors(tmp_path):
    err = _error(tmp_path, "spec.toml", SPEC.replace("[experiments.safety]", "[experiments.safty]"))
    assert "unknown field 'safty'" in str(err) and "(line 16)" in str(err)
