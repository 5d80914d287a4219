"""The closed loop end to end: spec file -> service -> store -> controller -> new spec."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from abkit.lifecycle.audit import read_audit, read_spec_versions
from abkit.lifecycle.loop import Behaviour, run_loop
from abkit.lifecycle.spec import load_specs
from abkit.store.store import open_store

SPEC = """\
[[experiments]]
key = "{key}"
owner = "ranking team"
status = "running"
start = "{start}"

[[experiments.variants]]
name = "control"
payload = {{ model = "v1" }}

[[experiments.variants]]
name = "treatment"
payload = {{ model = "v2" }}

[experiments.metrics]
primary = "conversion_rate"
guardrails = ["errors_per_user"]
planned_units = 20000

[[experiments.metrics.define]]
name = "errors_per_user"
type = "mean"
event = "error"
aggregate = "count"
direction = "lower"

[experiments.readout]
method = "sequential"
decision = "automatic"

[experiments.ramp]
stages = [
  {{ traffic = 0.01, min_hours = 12 }},
  {{ traffic = 0.05, min_hours = 6 }},
  {{ traffic = 0.20, min_hours = 6 }},
  {{ traffic = 0.50 }},
]

[experiments.safety]
guardrails = ["errors_per_user"]
alpha = 0.05
"""


def _setup(tmp_path: Path, key: str) -> tuple[Path, datetime, object]:
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(
        days=6
    )
    path = tmp_path / "experiments.toml"
    path.write_text(SPEC.format(key=key, start=start.isoformat().replace("+00:00", "Z")))
    store = open_store(f"sqlite:///{tmp_path / 'abkit.db'}")
    store.register_experiments(load_specs(path).registry.values())
    return path, start, store


def test_harmful_variant_is_rolled_back_early_and_control_served(tmp_path: Path) -> None:
    path, start, store = _setup(tmp_path, "ranker-harm")
    behaviour = {
        "control": Behaviour(conversion=0.2, errors=4.0),
        "treatment": Behaviour(conversion=0.2, errors=4.8),  # +20% errors per user
    }
    run = run_loop(
        path,
        store,
        "ranker-harm",
        behaviour,
        start=start,
        hours=72,
        users_per_hour=2000,
        control_every=3,
        seed=1,
    )
    kinds = [a.action for a in run.actions]
    assert "rollback" in kinds, kinds
    rollback = next(a for a in run.actions if a.action == "rollback")
    assert "errors_per_user" in rollback.reason and "guardrail breached" in rollback.reason
    breach = rollback.evidence["guardrails"][0]
    assert breach["harmful"] and breach["relative"] > 0 and breach["p_value"] < 0.05
    # early: before the last stage, and far fewer treated units than a fixed 50/50 launch
    # read at its planned sample (half of planned_units see the harmful variant)
    assert kinds.index("rollback") <= 2
    fixed_launch_treated = load_specs(path)["ranker-harm"].metrics.planned_units / 2
    assert run.enrolled_before_first_stop["treatment"] < 0.1 * fixed_launch_treated
    spec = load_specs(path)["ranker-harm"]
    assert spec.status == "stopped" and spec.experiment.winner == "control"
    assert set(run.served_last_hour) == {"control"}  # the service follows the new spec
    assert run.reshuffled == 0
    # the audit trail is in the store and every spec version was kept
    assert [a.action for a in read_audit(store, "ranker-harm")] == kinds
    assert len(read_spec_versions(store, "ranker-harm")) == len(kinds) + 1
    assert (tmp_path / "experiments.toml.prev").exists()


def test_good_variant_climbs_every_stage_and_ships(tmp_path: Path) -> None:
    path, start, store = _setup(tmp_path, "ranker-good")
    behaviour = {
        "control": Behaviour(conversion=0.20, errors=0.5),
        "treatment": Behaviour(conversion=0.26, errors=0.5),
    }
    log = tmp_path / "audit.jsonl"
    from abkit.lifecycle.controller import Notifiers

    run = run_loop(
        path,
        store,
        "ranker-good",
        behaviour,
        start=start,
        hours=48,
        users_per_hour=2000,
        control_every=3,
        seed=2,
        notifiers=Notifiers(audit_log=log),
    )
    kinds = [a.action for a in run.actions]
    assert kinds == ["advance", "advance", "advance", "ship"], kinds
    spec = load_specs(path)["ranker-good"]
    assert spec.status == "stopped" and spec.experiment.winner == "treatment"
    assert set(run.served_last_hour) == {"treatment"}
    assert run.reshuffled == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["action"] for entry in lines] == kinds


def test_a_truncated_spec_never_reaches_a_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import abkit.assignment.live as live_module
    from abkit.assignment.live import LiveRegistry
    from abkit.lifecycle.spec import service_registry

    path, _start, _store = _setup(tmp_path, "ranker-cut")
    good = path.read_text()
    errors: list[Exception] = []
    live = LiveRegistry(path, loader=service_registry, start=False, on_error=errors.append)
    served = live["ranker-cut"]
    for cut in (len(good) // 3, len(good) // 2, len(good) - 40):
        path.write_text(good[:cut])  # a writer that died half-way (not atomic)
        assert not live.refresh()
        assert live["ranker-cut"] == served
    assert live.errors == 3 and len(errors) == 3
    # a whole file written in place is served once it has stayed the same for 2 s
    path.write_text(good.replace('status = "running"', 'status = "paused"'))
    assert not live.refresh() and live["ranker-cut"] == served
    monkeypatch.setattr(live_module, "_QUIET_NS", 0)
    assert live.refresh() and live["ranker-cut"].status == "paused"
    live.close()
