"""``abkit assign`` and ``abkit assign diff``: JSON lines, exposures, exit codes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abkit.assignment import assign, load_experiments
from abkit.cli.main import main

REGISTRY = """\
[[experiments]]
key = "ranker"
traffic = 0.5
targeting = { not = { attr = "ua", regex = "bot" } }
[[experiments.variants]]
name = "control"
payload = { model = "m1" }
[[experiments.variants]]
name = "treatment"
payload = { model = "m2" }

[[experiments]]
key = "banner"
variants = ["off", "on"]
"""


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    p = tmp_path / "experiments.toml"
    p.write_text(REGISTRY, encoding="utf-8")
    return p


def lines(out: str) -> list[dict]:
    return [json.loads(x) for x in out.splitlines()]


def test_assign_prints_json_lines_matching_the_library(registry, capsys):
    ids = ["u1", "u2", "日本", "👍"]
    assert main(["assign", "--experiments", str(registry), "--experiment", "ranker", *ids]) == 0
    rows = lines(capsys.readouterr().out)
    exp = load_experiments(registry)["ranker"]
    assert rows == [assign(exp, u, expose=False).to_dict() for u in ids]
    assert set(rows[0]) == {
        "experiment",
        "unit_id",
        "variant",
        "payload",
        "in_experiment",
        "bucket",
        "reason",
    }


def test_every_experiment_when_no_key_and_attrs(registry, capsys):
    assert main(["assign", "--experiments", str(registry), "--attr", "ua=Googlebot", "u1"]) == 0
    rows = lines(capsys.readouterr().out)
    assert [r["experiment"] for r in rows] == ["ranker", "banner"]
    assert rows[0]["reason"] == "not_targeted"


def test_ids_from_stdin_and_exposure_file(registry, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("a\nb\n\nc\n"))
    exposures = tmp_path / "exposures.jsonl"
    code = main(
        [
            "assign",
            "--experiments",
            str(registry),
            "--experiment",
            "banner",
            "--now",
            "2026-03-01T00:00:00Z",
            "--exposures",
            str(exposures),
            "-",
        ]
    )
    assert code == 0
    rows = lines(capsys.readouterr().out)
    assert [r["unit_id"] for r in rows] == ["a", "b", "c"]
    written = lines(exposures.read_text())
    assert [w["unit_id"] for w in written] == ["a", "b", "c"]  # banner enrolls everyone
    assert (
        written[0]["timestamp"] == "2026-03-01T00:00:00+00:00" and len(written[0]["event_id"]) == 32
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["assign", "--experiments", "{reg}", "--experiment", "nope", "u1"],
            "no experiment 'nope'",
        ),
        (["assign", "--experiments", "{tmp}/missing.toml", "u1"], "registry file not found"),
        (["assign", "--experiments", "{reg}"], "at least one UNIT_ID"),
        (
            ["assign", "--experiments", "{reg}", "u1", "--attr", "a=b"],
            "must come before the unit ids",
        ),
        (["assign", "--experiments", "{reg}", "--now", "yesterday", "u1"], "not an ISO-8601"),
    ],
)
def test_errors_are_one_line_exit_2(registry, tmp_path, capsys, argv, message):
    argv = [a.format(reg=registry, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_diff_ok_and_reshuffle_exit_codes(registry, tmp_path, capsys):
    ramped = tmp_path / "ramped.toml"
    ramped.write_text(REGISTRY.replace("traffic = 0.5", "traffic = 0.9"), encoding="utf-8")
    assert (
        main(
            [
                "assign",
                "diff",
                str(registry),
                str(ramped),
                "--sample",
                "5000",
                "--fail-on-reshuffle",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "OK: no running experiment moves enrolled units." in out and "| ranker | changed |" in out
    )
    resalted = tmp_path / "resalted.toml"
    resalted.write_text(
        REGISTRY.replace('key = "banner"', 'key = "banner"\nsalt = "banner-2"'), encoding="utf-8"
    )
    assert (
        main(
            [
                "assign",
                "diff",
                str(registry),
                str(resalted),
                "--sample",
                "5000",
                "--fail-on-reshuffle",
                "--json",
            ]
        )
        == 4
    )
    data = json.loads(capsys.readouterr().out)
    banner = next(e for e in data["experiments"] if e["key"] == "banner")
    assert banner["reshuffles"] and 0.45 < banner["switched_share"] < 0.55
    ids = tmp_path / "ids.txt"
    ids.write_text("x\ny\n")
    assert (
        main(
            [
                "assign",
                "diff",
                str(registry),
                str(resalted),
                "--ids",
                str(ids),
                "--experiment",
                "banner",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n_units"] == 2


def test_no_traceback_in_a_real_process(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[experiments]]\nkey = "k"\nvariants = ["a", "a"]\n')
    res = subprocess.run(
        [sys.executable, "-m", "abkit", "assign", "--experiments", str(bad), "u1"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "duplicate variant names" in res.stderr and "(line 3)" in res.stderr


@pytest.mark.parametrize(
    "content",
    [
        '{"experiments": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"experiments": [{"key": "k", "variants": ["a", "b"], "traffic": ' + "9" * 5000 + "}]}",
        json.dumps(
            {
                "experiments": [
                    {
                        "key": "k",
                        "variants": ["a", "b"],
                        "targeting": {"attr": "ua", "regex": "(a|aa)+$"},
                    }
                ]
            }
        ),
    ],
    ids=["nested-100k", "5000-digits", "regex"],
)
def test_hostile_registries_exit_2_with_one_located_line(tmp_path, capsys, content, monkeypatch):
    monkeypatch.setitem(sys.modules, "re2", None)  # the regex case: the fallback refuses it
    path = tmp_path / "hostile.json"
    path.write_text(content, encoding="utf-8")
    assert main(["assign", "--experiments", str(path), "--experiment", "k", "u1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "unexpected error" not in err


_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=8),
        st.sampled_from(["control", "treatment", "running", "stopped", "(a|aa)+$", "k"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "key",
                    "variants",
                    "traffic",
                    "status",
                    "targeting",
                    "namespace",
                    "attr",
                    "regex",
                    "not",
                    "any",
                    "eq",
                    "name",
                    "weight",
                    "payload",
                    "start",
                    "ramp",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    experiments=st.lists(_values, max_size=3),
    raw=st.binary(max_size=40),
    as_toml=st.booleans(),
)
def test_no_registry_file_makes_assign_exit_with_an_unexpected_error(
    tmp_path, capsys, experiments, raw, as_toml
):
    """Whatever the file holds (shaped like a registry, or random bytes), exit 0 or 2."""
    for name, content in [
        ("shaped.json", json.dumps({"experiments": experiments}).encode()),
        ("raw.toml" if as_toml else "raw.json", raw),
    ]:
        path = tmp_path / name
        path.write_bytes(content)
        code = main(["assign", "--experiments", str(path), "u1"])
        err = capsys.readouterr().err
        assert code in (0, 2), err
        if code == 2:  # a user error: one line naming the file
            assert "unexpected error" not in err and str(path) in err
