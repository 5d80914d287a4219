"""``abkit experiments``: every declared experiment with its state, read from the spec file
and the store (the controller's last look, the audit trail, distinct exposed units)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from abkit.lifecycle.audit import AuditEntry, read_audit, read_status
from abkit.lifecycle.spec import load_specs
from abkit.store.store import Store, open_store


@dataclass(frozen=True)
class ExperimentRow:
    """One line of ``abkit experiments``."""

    key: str
    status: str
    owner: str
    stage: str
    traffic: float
    days_running: float | None
    units: int | None
    last_verdict: str | None
    last_action: str | None
    spec_version: str = ""


def list_experiments(
    spec_path: str | Path, db: str | Store | None = None, *, now: datetime | None = None
) -> list[ExperimentRow]:
    """State, ramp stage, days running, units and last verdict of every declared experiment."""
    specfile = load_specs(spec_path)
    at = datetime.now(timezone.utc) if now is None else now
    status: dict[str, dict[str, Any]] = {}
    audit: dict[str, AuditEntry] = {}
    units: dict[str, int] = {}
    if db is not None:
        store = open_store(db, create=False)
        status = read_status(store)
        for entry in read_audit(store):
            audit[entry.experiment] = entry
        units = _units_by_experiment(store)
    rows = []
    for spec in specfile.specs.values():
        exp = spec.experiment
        stage = "-"
        if spec.ramp is not None:
            index = spec.stage
            stage = "-" if index is None else f"{index + 1}/{len(spec.ramp.stages)}"
        last = audit.get(spec.key)
        days = None
        if exp.start is not None and spec.status != "draft":
            # a stopped experiment ran until its last action
            until = last.at if spec.status == "stopped" and last is not None else at
            days = max((until - exp.start).total_seconds() / 86400.0, 0.0)
        rows.append(
            ExperimentRow(
                key=spec.key,
                status=spec.status
                + ("" if exp.winner is None or spec.status != "stopped" else f" ({exp.winner})"),
                owner=exp.owner,
                stage=stage,
                traffic=exp.traffic,
                days_running=days,
                units=units.get(spec.key),
                last_verdict=status.get(spec.key, {}).get("verdict"),
                last_action=None if last is None else f"{last.action} {last.at:%Y-%m-%d %H:%M}",
                spec_version=spec.version[:12],
            )
        )
    return rows


def _units_by_experiment(store: Store) -> dict[str, int]:
    table = store.tables.exposures
    query = select(table.c.experiment, func.count(func.distinct(table.c.unit_id))).group_by(
        table.c.experiment
    )
    with store.engine.connect() as conn:
        return {str(k): int(n) for k, n in conn.execute(query)}
