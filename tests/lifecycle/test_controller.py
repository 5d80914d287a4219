"""The controller: decisions, dry run, idempotence, two controllers at once, manual actions."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abkit.assignment.exposure import ExposureRecord
from abkit.errors import ConfigError
from abkit.ingest.ingestor import ingest
from abkit.lifecycle.audit import (
    read_audit,
    read_spec_versions,
)
from abkit.lifecycle.controller import Notifiers, manual_action, run_controller
from abkit.lifecycle.listing import list_experiments
from abkit.lifecycle.spec import load_specs
from abkit.store.store import open_store

START = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)

SPEC = f"""\
[[experiments]]
key = "exp"
status = "running"
start = "{START.isoformat()}"
variants = ["control", "treatment"]

[experiments.metrics]
primary = "conversion_rate"
guardrails = [{{ metric = "errors_per_user", direction = "lower" }}]

[[experiments.metrics.define]]
name = "errors_per_user"
type = "mean"
event = "error"
aggregate = "count"
direction = "lower"

[experiments.ramp]
stages = [{{ traffic = 0.1, min_hours = 2 }}, {{ traffic = 0.5 }}]

[experiments.safety]
alpha = 0.05
"""


def _store_with_data(
    url: str, spec_path: Path, errors_t: float = 1.0, n: int = 400, keys: tuple[str, ...] = ("exp",)
):
    store = open_store(url)
    store.register_experiments(load_specs(spec_path).registry.values())
    rng = np.random.default_rng(3)
    records, events = [], []
    for i in range(n):
        variant = "control" if i % 2 else "treatment"
        at = START + timedelta(minutes=i)
        records += [ExposureRecord.create(key, f"u{i}", variant, at) for key in keys]
        if rng.random() < 0.2:
            events.append((f"u{i}", "purchase", 10.0, at + timedelta(minutes=5)))
        rate = 1.0 if variant == "control" else errors_t
        for _ in range(int(rng.poisson(rate))):
            events.append((f"u{i}", "error", None, at + timedelta(minutes=6)))
    ingest(records, db=store, kind="exposures")
    frame = pd.DataFrame(events, columns=["unit_id", "event_type", "value", "timestamp"])
    ingest(frame, db=store, kind="events")
    return store


def _another(key: str) -> str:
    """The spec's experiment under another key (to put beside it in one file)."""
    return SPEC.replace('key = "exp"', f'key = "{key}"').replace(
        "[[experiments]]", "\n[[experiments]]"
    )


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(SPEC)
    return path


def test_dry_run_changes_nothing(spec_path: Path, sqlite_url: str) -> None:
    store = _store_with_data(sqlite_url, spec_path)
    before = spec_path.read_text()
    report = run_controller(spec_path, store, now=START + timedelta(hours=10), dry_run=True)
    assert report.evaluations[0].planned.action == "advance"
    assert not report.applied
    assert spec_path.read_text() == before
    assert read_audit(store) == []
    assert read_spec_versions(store, "exp") == []  # not even the version seen
    assert "dry run" in report.lines()[-1]


def test_advance_once_then_wait_for_the_next_minimum(spec_path: Path, sqlite_url: str) -> None:
    store = _store_with_data(sqlite_url, spec_path)
    now = START + timedelta(hours=10)
    first = run_controller(spec_path, store, now=now)
    assert [e.action for e in first.applied] == ["advance"]
    assert load_specs(spec_path)["exp"].experiment.traffic == 0.5
    again = run_controller(spec_path, store, now=now)  # idempotent: nothing more to do
    assert not again.applied
    rows = list_experiments(spec_path, store, now=now)
    assert rows[0].stage == "2/2" and rows[0].units == 400
    assert rows[0].last_action.startswith("advance")


def test_harm_rolls_back_to_the_declared_variant(spec_path: Path, sqlite_url: str) -> None:
    store = _store_with_data(sqlite_url, spec_path, errors_t=2.0)
    report = run_controller(spec_path, store, now=START + timedelta(hours=10))
    (entry,) = report.applied
    assert entry.action == "rollback" and "errors_per_user" in entry.reason
    spec = load_specs(spec_path)["exp"]
    assert (spec.status, spec.experiment.winner) == ("stopped", "control")


def _two_at_once(spec_path: Path, url: str) -> list[str]:
    barrier = threading.Barrier(2)
    actions: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            store = open_store(url)
            barrier.wait()
            report = run_controller(spec_path, store, now=START + timedelta(hours=10))
            actions.extend(e.action for e in report.applied)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return actions


def test_two_controllers_at_once_act_once_sqlite(spec_path: Path, sqlite_url: str) -> None:
    _store_with_data(sqlite_url, spec_path)
    assert _two_at_once(spec_path, sqlite_url) == ["advance"]
    assert load_specs(spec_path)["exp"].experiment.traffic == 0.5
    assert [e.action for e in read_audit(open_store(sqlite_url))] == ["advance"]


def test_two_controllers_at_once_act_once_postgres(spec_path: Path, postgres_url: str) -> None:
    _store_with_data(postgres_url, spec_path)
    assert _two_at_once(spec_path, postgres_url) == ["advance"]
    assert [e.action for e in read_audit(open_store(postgres_url))] == ["advance"]


def test_manual_actions_go_through_the_same_path(spec_path: Path, sqlite_url: str) -> None:
    store = _store_with_data(sqlite_url, spec_path)
    seen: list[dict] = []
    notify = Notifiers(hooks=(seen.append,))
    paused = manual_action(spec_path, store, "exp", "pause", actor="ana", notifiers=notify)
    assert paused is not None and load_specs(spec_path)["exp"].status == "paused"
    assert manual_action(spec_path, store, "exp", "resume", actor="ana").action == "resume"
    with pytest.raises(ConfigError, match="winning variant"):
        manual_action(spec_path, store, "exp", "ship")
    shipped = manual_action(spec_path, store, "exp", "ship", winner="treatment")
    spec = load_specs(spec_path)["exp"]
    assert (spec.status, spec.experiment.winner) == ("stopped", "treatment")
    assert [e.action for e in read_audit(store, "exp")] == ["pause", "resume", "ship"]
    assert seen[0]["action"] == "pause" and seen[0]["actor"] == "ana"
    assert shipped.to_version == spec.version
    with pytest.raises(ConfigError, match="is stopped"):
        manual_action(spec_path, store, "exp", "pause")


def test_a_failing_hook_does_not_undo_the_action(spec_path: Path, sqlite_url: str) -> None:
    store = _store_with_data(sqlite_url, spec_path)

    def broken(entry: object) -> None:
        raise RuntimeError("pager down")

    report = run_controller(
        spec_path,
        store,
        now=START + timedelta(hours=10),
        notifiers=Notifiers(hooks=(broken,), commands=("false",)),
    )
    assert [e.action for e in report.applied] == ["advance"]
    assert len(report.hook_errors) == 2 and "pager down" in report.hook_errors[0]


def test_webhook_and_entry_point_hooks(spec_path: Path, sqlite_url: str, tmp_path: Path) -> None:
    import json
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from abkit.lifecycle.controller import entry_point_hook

    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    (tmp_path / "myhooks.py").write_text(
        "seen = []\ndef on_action(entry):\n    seen.append(entry['action'])\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        hook = entry_point_hook("myhooks:on_action")
        store = _store_with_data(sqlite_url, spec_path)
        url = f"http://127.0.0.1:{server.server_port}/abkit"
        report = run_controller(
            spec_path,
            store,
            now=START + timedelta(hours=10),
            notifiers=Notifiers(hooks=(hook,), webhooks=(url,)),
        )
        thread.join(timeout=10)
        assert not report.hook_errors
        assert received[0]["action"] == "advance" and received[0]["experiment"] == "exp"
        assert sys.modules["myhooks"].seen == ["advance"]
    finally:
        sys.path.remove(str(tmp_path))
        server.server_close()
    with pytest.raises(ConfigError, match=r"package\.module:function"):
        entry_point_hook("no_colon")


def test_propose_policy_records_without_changing_the_spec(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(SPEC.replace("alpha = 0.05\n", 'alpha = 0.05\naction = "propose"\n'))
    store = _store_with_data(sqlite_url, path, errors_t=2.0)
    before = path.read_text()
    now = START + timedelta(hours=10)
    (entry,) = run_controller(path, store, now=now).applied
    assert entry.action == "propose-rollback" and entry.evidence["changes"] == {}
    assert path.read_text() == before  # a person decides
    assert not run_controller(path, store, now=now).applied  # proposed once per version


def test_two_controller_processes_act_once(spec_path: Path, sqlite_url: str) -> None:
    import subprocess
    import sys

    _store_with_data(sqlite_url, spec_path)
    now = (START + timedelta(hours=10)).isoformat()
    argv = [sys.executable, "-m", "abkit", "controller", "run", "--spec", str(spec_path)]
    argv += ["--db", sqlite_url, "--now", now]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert sum("advance recorded" in out for out in outputs) == 1, outputs
    assert [e.action for e in read_audit(open_store(sqlite_url))] == ["advance"]
    assert load_specs(spec_path)["exp"].experiment.traffic == 0.5


def test_the_controller_reads_through_the_unit_cache(spec_path: Path, sqlite_url: str) -> None:
    from sqlalchemy import select

    from abkit.lifecycle.controller import evaluate

    store = _store_with_data(sqlite_url, spec_path)
    now = START + timedelta(hours=10)
    spec = load_specs(spec_path)["exp"]
    full = evaluate(spec, store, now=now)
    cached = evaluate(spec, store, now=now, refresh="auto")  # builds the cache
    again = evaluate(spec, store, now=now, refresh="auto")  # reads it: nothing new
    for got in (cached, again):
        assert (got.verdict, got.units, got.summary) == (full.verdict, full.units, full.summary)
        assert got.planned is not None and full.planned is not None
        assert got.planned.action == full.planned.action == "advance"
    registry = store.tables.unit_caches
    with store.engine.connect() as conn:
        built = conn.execute(select(registry.c.refreshed_at_us)).scalar_one()
    (entry,) = run_controller(spec_path, store, now=now).applied  # refresh="auto" by default
    assert entry.action == "advance"
    with store.engine.connect() as conn:
        assert conn.execute(select(registry.c.refreshed_at_us)).scalar_one() > built


def test_a_rollback_undone_by_restoring_the_file_is_taken_again(
    spec_path: Path, sqlite_url: str
) -> None:
    # the owner relaunches by restoring the previous file; the harm is still there
    store = _store_with_data(sqlite_url, spec_path, errors_t=2.0)
    now = START + timedelta(hours=10)
    assert [e.action for e in run_controller(spec_path, store, now=now).applied] == ["rollback"]
    spec_path.write_text(SPEC)
    again = run_controller(spec_path, store, now=now + timedelta(hours=1))
    assert [e.action for e in again.applied] == ["rollback"] and not again.already_done
    assert load_specs(spec_path)["exp"].status == "stopped"
    keys = [e.action_key for e in read_audit(store, "exp")]
    assert len(keys) == 2 and len(set(keys)) == 2


def test_an_edit_during_the_run_defers_one_experiment_and_keeps_the_others_actions(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import abkit.lifecycle.controller as controller

    path = tmp_path / "experiments.toml"
    path.write_text(SPEC + _another("exp2"))
    store = _store_with_data(sqlite_url, path, keys=("exp", "exp2"))
    write = controller.write_spec_version

    def then_a_person_edits_exp2(*args: object, **kwargs: object) -> object:
        out = write(*args, **kwargs)  # type: ignore[arg-type]
        text = path.read_text()
        if 'owner = "alice"' not in text:
            path.write_text(text.replace('key = "exp2"', 'key = "exp2"\nowner = "alice"'))
        return out

    monkeypatch.setattr(controller, "write_spec_version", then_a_person_edits_exp2)
    log = tmp_path / "audit.jsonl"
    report = run_controller(
        path, store, now=START + timedelta(hours=10), notifiers=Notifiers(audit_log=log)
    )
    assert [e.experiment for e in report.applied] == ["exp"]
    assert len(report.deferred) == 1 and report.deferred[0].startswith("exp2: advance")
    assert [(e.experiment, e.action) for e in read_audit(store)] == [("exp", "advance")]
    assert len(log.read_text().splitlines()) == 1
    specs = load_specs(path)
    assert (specs["exp"].experiment.traffic, specs["exp2"].experiment.traffic) == (0.5, 0.1)


def test_a_failing_audit_log_and_webhook_do_not_stop_the_other_channels(
    spec_path: Path, sqlite_url: str, tmp_path: Path
) -> None:
    store = _store_with_data(sqlite_url, spec_path)
    seen: list[dict] = []
    report = run_controller(
        spec_path,
        store,
        now=START + timedelta(hours=10),
        notifiers=Notifiers(
            hooks=(seen.append,),
            webhooks=("no-scheme/hook",),
            commands=('unbalanced "quote',),
            audit_log=tmp_path / "missing" / "audit.jsonl",
        ),
    )
    assert [e.action for e in report.applied] == ["advance"] and len(seen) == 1
    assert len(report.hook_errors) == 3


def test_stage_time_counts_from_the_launch_not_the_draft(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "experiments.toml"
    draft = SPEC.replace('status = "running"\n', "").replace(f'start = "{START.isoformat()}"\n', "")
    path.write_text(draft)
    store = _store_with_data(sqlite_url, path)
    run_controller(path, store, now=START)  # the store sees the draft
    path.write_text(draft.replace('key = "exp"\n', 'key = "exp"\nstatus = "running"\n'))
    launched = START + timedelta(hours=48)
    first = run_controller(path, store, now=launched)  # sees the launch: 0 h in stage 1
    assert not first.applied
    early = run_controller(path, store, now=launched + timedelta(hours=1))
    assert not early.applied  # 1 h of the 2 h minimum, not 49 h
    later = run_controller(path, store, now=launched + timedelta(hours=3))
    assert [e.action for e in later.applied] == ["advance"]


def test_a_dry_run_neither_creates_nor_upgrades_a_store(
    spec_path: Path, sqlite_url: str, tmp_path: Path
) -> None:
    from sqlalchemy import create_engine, select, update

    from abkit.errors import StoreError

    missing = tmp_path / "none.db"
    with pytest.raises(StoreError):
        run_controller(spec_path, f"sqlite:///{missing}", dry_run=True)
    assert not missing.exists()
    store = _store_with_data(sqlite_url, spec_path)
    meta = store.tables.meta
    with store.write() as conn:  # as if an older abkit had written it
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="3"))
    store.close()
    with pytest.raises(StoreError, match="schema version 3"):
        run_controller(spec_path, sqlite_url, dry_run=True)
    with create_engine(sqlite_url).connect() as conn:  # not upgraded
        version = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version"))
        assert version.scalar() == "3"


def test_an_experiment_that_cannot_be_read_does_not_block_the_others(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import abkit.lifecycle.controller as controller
    from abkit.errors import DataError

    path = tmp_path / "experiments.toml"
    path.write_text(_another("bad") + SPEC)  # the unreadable one first
    store = _store_with_data(sqlite_url, path, errors_t=2.0, keys=("exp", "bad"))
    read = controller.analyze

    def failing_for_bad(db: object, experiment: object, **kwargs: object) -> object:
        if getattr(experiment, "key", experiment) == "bad":
            raise DataError("a row the analysis cannot read", file="events", row=7, field="value")
        return read(db, experiment, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(controller, "analyze", failing_for_bad)
    report = run_controller(path, store, now=START + timedelta(hours=10))
    assert [(e.experiment, e.action) for e in report.applied] == [("exp", "rollback")]
    assert len(report.errors) == 1 and report.errors[0].startswith("bad: ")
