"""The config-change impact check, against exact expectations from the hashing spec."""

from __future__ import annotations

import pytest

from abkit.assignment import Experiment, diff_experiments, hashing
from abkit.assignment.registry import registry_from_dict

AB = ["control", "treatment"]
IDS = [f"user-{i}" for i in range(30_000)]


def test_ramp_up_only_joins():
    d = diff_experiments(
        Experiment("r", variants=AB, traffic=0.05), Experiment("r", variants=AB, traffic=0.5), IDS
    )
    e = d["r"]
    assert (e.switched, e.left) == (0, 0)
    assert e.joined == e.enrolled_after - e.enrolled_before
    assert e.share("joined") == pytest.approx(0.45, abs=0.01)
    assert d.ok and not d.sampled
    assert "traffic" in e.changed_fields


def test_weight_change_switches_exactly_the_boundary_units():
    old = Experiment(
        "w", variants=[{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}]
    )
    new = Experiment(
        "w", variants=[{"name": "control", "weight": 0.4}, {"name": "treatment", "weight": 0.6}]
    )
    d = diff_experiments(old, new, IDS)
    lo, hi = hashing.threshold(0.4), hashing.threshold(0.5)
    expected = sum(lo <= hashing.variant_hash("w", u) < hi for u in IDS)
    e = d["w"]
    assert e.switched == expected and e.transitions == {
        "control -> treatment": expected,
        "treatment -> treatment": e.stayed - sum(hashing.variant_hash("w", u) < lo for u in IDS),
        "control -> control": sum(hashing.variant_hash("w", u) < lo for u in IDS),
    }
    assert e.reshuffles and not d.ok
    assert any("weights changed" in w for w in e.warnings)


def test_salt_change_reshuffles_half():
    d = diff_experiments(
        Experiment("s", variants=AB), Experiment("s", variants=AB, salt="s-2"), sample=20_000
    )
    assert d.sampled and d.n_units == 20_000
    assert d["s"].share("switched") == pytest.approx(0.5, abs=0.02)
    assert any("salt changed" in w for w in d["s"].warnings)


def test_registries_added_removed_unchanged_and_stopping():
    old = registry_from_dict(
        {
            "experiments": [
                {"key": "keep", "variants": AB},
                {"key": "drop", "variants": AB, "traffic": 0.5},
                {"key": "stop", "variants": AB},
            ]
        }
    )
    new = registry_from_dict(
        {
            "experiments": [
                {"key": "keep", "variants": AB, "description": "only text changed"},
                {"key": "stop", "variants": AB, "status": "stopped", "winner": "treatment"},
                {"key": "fresh", "variants": AB},
            ]
        }
    )
    d = diff_experiments(old, new, IDS[:5000])
    assert [x.key for x in d.experiments] == ["keep", "drop", "stop", "fresh"]
    assert d["keep"].change == "changed" and d["keep"].changed_fields == ("description",)
    assert d["keep"].switched == d["keep"].left == 0 and not d["keep"].reshuffles
    assert d["drop"].change == "removed" and d["drop"].left == d["drop"].enrolled_before > 0
    assert d["fresh"].change == "added" and d["fresh"].joined == 5000
    stop = d["stop"]
    assert stop.left == 5000 and stop.reshuffles  # stopping ends enrollment for everyone
    # everyone is now served the winner: units that had control change what they see
    assert stop.served_changed == stop.transitions.get("control -> -", 0)
    text = d.to_text()
    assert "RESHUFFLE" in text and "stop" in text and "| keep | changed |" in text
    assert d.to_dict()["ok"] is False


def test_unchanged_and_targeting_warning():
    e = Experiment("t", variants=AB, targeting={"attr": "country", "eq": "US"})
    d = diff_experiments(e, e, sample=1000)
    assert d["t"].change == "unchanged" and d["t"].stayed == 1000  # targeting skipped
    assert any("targeting not evaluated" in w for w in d["t"].warnings)
    with_attrs = diff_experiments(
        e, e, ["a", "b"], attributes=[{"country": "US"}, {"country": "FR"}]
    )
    assert (with_attrs["t"].stayed, with_attrs["t"].outside) == (1, 1)
