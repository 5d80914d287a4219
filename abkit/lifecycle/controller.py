"""The controller: reconcile each running experiment's declared intent with its data, and act.

One run (``abkit controller run``, safe from cron) takes the controller lock in the store,
re-reads the spec file, records every spec version it has not seen, and for each running
experiment:

1. reads the data with :func:`abkit.analysis.analyze.analyze` and the spec's inputs
   (:func:`abkit.lifecycle.spec.resolve_analysis_inputs`);
2. **rolls back** (status ``stopped``, ``winner`` = the declared rollback variant, which
   every service then serves) as soon as a guardrail of the safety policy shows harm under
   the always-valid rule of :mod:`abkit.lifecycle.safety`;
3. otherwise **advances** the ramp to the next stage once the stage's minimum (hours since
   the stage began, units enrolled) is met: raising ``traffic`` only adds units, it never
   moves an enrolled unit (the assignment spec's traffic hash is independent of the variant
   hash);
4. at the last stage, **ships** (status ``stopped`` with the winner) or **stops** when the
   primary decision is final: at any look for a sequential readout, at the planned sample
   (``metrics.planned_units``, else the decision's information fraction >= 1) for a
   fixed-horizon or Bayesian one. ``readout.decision = "propose"`` (and
   ``safety.action = "propose"``) records the proposal and notifies instead of acting.

Each action writes the new spec version atomically (:mod:`abkit.lifecycle.writer`), an
audit row in the store and a JSON line (:mod:`abkit.lifecycle.audit`), then calls the
notification hooks after the commit. A dry run decides and reports but writes nothing.
Manual actions (:func:`manual_action`: pause, resume, rollback, ship) take the same path.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from abkit.analysis.analyze import analyze
from abkit.errors import AbkitError, ConfigError, NotEnoughDataError
from abkit.lifecycle.actions import MANUAL_ACTIONS, STAGE_STARTS, Action
from abkit.lifecycle.audit import (
    AuditEntry,
    lifecycle_lock,
    read_audit,
    read_spec_versions,
    record_action,
    record_spec_version,
    record_status,
)
from abkit.lifecycle.safety import HarmEvidence, harm_evidence
from abkit.lifecycle.spec import (
    ExperimentSpec,
    SpecFile,
    canonical_json,
    load_specs,
    resolve_analysis_inputs,
    specs_from_text,
)
from abkit.lifecycle.writer import StaleSpecError, apply_changes, write_spec_version
from abkit.store.store import Store, open_store
from abkit.timeutil import from_us
from abkit.vocabulary import MetricType, RefreshMode

log = logging.getLogger(__name__)


Hook = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class Planned:
    """What the controller decided for one experiment (``changes`` to its spec fields)."""

    experiment: str
    action: Action
    reason: str
    changes: Mapping[str, Any]
    evidence: Mapping[str, Any]


@dataclass(frozen=True)
class Evaluation:
    """The controller's look at one running experiment."""

    experiment: str
    spec_version: str
    stage: int | None
    traffic: float
    units: int | None
    verdict: str | None
    summary: str
    planned: Planned | None = None


@dataclass(frozen=True)
class RunReport:
    """One controller run: every evaluation, and the actions taken (or, dry, planned)."""

    evaluations: tuple[Evaluation, ...]
    applied: tuple[AuditEntry, ...]
    already_done: tuple[str, ...]
    dry_run: bool
    hook_errors: tuple[str, ...] = ()
    # experiments that could not be evaluated (the others were acted on)
    errors: tuple[str, ...] = ()
    # actions not taken because the spec changed on disk during the run (the next run
    # evaluates the new version)
    deferred: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        out = []
        for ev in self.evaluations:
            stage = "" if ev.stage is None else f", stage {ev.stage + 1}"
            act = "" if ev.planned is None else f" -> {ev.planned.action}: {ev.planned.reason}"
            out.append(f"{ev.experiment} [traffic {ev.traffic:g}{stage}]: {ev.summary}{act}")
        if self.dry_run:
            out.append("dry run: nothing was changed")
        return out


@dataclass(frozen=True)
class Notifiers:
    """Where actions are announced, after they are committed (failures are logged)."""

    hooks: tuple[Hook, ...] = ()
    commands: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()
    audit_log: Path | None = None

    def notify(self, entry: AuditEntry) -> list[str]:
        payload = entry.to_dict()
        text = json.dumps(payload, sort_keys=True, default=str)
        errors: list[str] = []
        # The action is committed: a failing channel (a full disk, a webhook answering
        # garbage, a bad command line) is reported and must keep neither the other
        # channels nor the other entries from being told.
        if self.audit_log is not None:
            try:
                with open(self.audit_log, "a", encoding="utf-8") as handle:
                    handle.write(text + "\n")
            except Exception as exc:
                errors.append(f"audit log {self.audit_log}: {exc}")
        for hook in self.hooks:
            try:
                hook(payload)
            except Exception as exc:
                errors.append(f"hook {getattr(hook, '__name__', hook)!r}: {exc}")
        for command in self.commands:
            try:
                subprocess.run(shlex.split(command), input=text, text=True, check=True, timeout=30)
            except Exception as exc:
                errors.append(f"command {command!r}: {exc}")
        for url in self.webhooks:
            try:
                request = urllib.request.Request(
                    url, data=text.encode(), headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=10):
                    pass
            except Exception as exc:
                errors.append(f"webhook {url}: {exc}")
        for error in errors:
            log.warning("notification failed: %s", error)
        return errors


def entry_point_hook(spec: str) -> Hook:
    """A hook from ``"package.module:function"`` (the function receives the audit entry)."""
    import importlib

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"a hook is 'package.module:function', got {spec!r}", field="hook")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load hook {spec!r}: {exc}", field="hook") from None
    if not callable(target):
        raise ConfigError(f"hook {spec!r} is not callable", field="hook")
    hook: Hook = target
    return hook


# --------------------------------------------------------------------------- deciding
def _now(now: datetime | None) -> datetime:
    return datetime.now(timezone.utc) if now is None else now.astimezone(timezone.utc)


def stage_started(store: Store, spec: ExperimentSpec) -> datetime | None:
    """When the current stage began: the last advance/resume in the audit trail, else the
    experiment's ``start``, else when the store first saw a version of the spec that was
    running (a draft seen days before its launch has not been ramping)."""
    entries = [e for e in read_audit(store, spec.key) if e.action in STAGE_STARTS]
    if entries:
        return entries[-1].at
    if spec.experiment.start is not None:
        return spec.experiment.start
    launched = [
        int(v["seen_at_us"])
        for v in read_spec_versions(store, spec.key)
        if json.loads(v["content"]).get("status") == "running"
    ]
    return from_us(min(launched)) if launched else None


def evaluate(
    spec: ExperimentSpec,
    store: Store,
    *,
    now: datetime | None = None,
    refresh: RefreshMode | None = None,
) -> Evaluation:
    """Decide what to do with one running experiment (reads only, except that ``refresh``
    brings the experiment's unit cache up to date first: :mod:`abkit.analysis.incremental`)."""
    at = _now(now)
    exp = spec.experiment
    waiting = Evaluation(
        experiment=spec.key,
        spec_version=spec.version,
        stage=spec.stage,
        traffic=exp.traffic,
        units=None,
        verdict=None,
        summary="",
    )
    inputs = resolve_analysis_inputs(spec)
    try:
        # Data at or after ``now`` is not read: a replayed or simulated clock sees the past only.
        # The spec, not the store's registry snapshot, says what the experiment is.
        result = analyze(
            store, spec.experiment, until=at, refresh=refresh, **inputs.analyze_kwargs()
        )
    except NotEnoughDataError as exc:
        return replace(waiting, summary=f"waiting: {exc}")
    arms = result.arm_stats[result.primary]
    units = int(sum(stats.n for stats in arms.values()))
    verdict = result.decision.verdict
    evaluation = replace(waiting, units=units, verdict=verdict)

    # 1. safety: any harmed guardrail stops the experiment.
    if spec.safety is not None and spec.metrics is not None:
        treatments = [v for v in exp.variant_names if v != exp.control.name]
        evidence: list[HarmEvidence] = []
        for name in spec.safety.guardrails:
            metric = spec.metrics.guardrail(name)
            stats = result.arm_stats.get(name, {})
            for variant in treatments:
                if exp.control.name not in stats or variant not in stats:
                    continue
                metric_type: MetricType = metric.type
                evidence.append(
                    harm_evidence(
                        name,
                        variant,
                        stats[exp.control.name],
                        stats[variant],
                        metric_type=metric_type,
                        direction=metric.direction,
                        alpha=spec.safety.test_alpha(len(treatments)),
                        tau_relative=spec.safety.tau_relative,
                        margin=metric.margin,
                    )
                )
        breached = [e for e in evidence if e.harmful]
        if breached:
            worst = breached[0]
            automatic = spec.safety.action == "automatic"
            planned = Planned(
                spec.key,
                "rollback" if automatic else "propose-rollback",
                f"guardrail breached: {worst.sentence()}",
                _rollback_changes(spec) if automatic else {},
                {"guardrails": [e.to_dict() for e in evidence], "units": units},
            )
            return replace(evaluation, summary="guardrail harm", planned=planned)
        safety_note = "; ".join(e.sentence() for e in evidence) or "no guardrail data yet"
    else:
        safety_note = "no safety policy"

    # 2. ramp: advance once the stage's minimum is met.
    stage = spec.stage
    if spec.ramp is not None and stage is not None and stage < len(spec.ramp.stages) - 1:
        current = spec.ramp.stages[stage]
        started = stage_started(store, spec) or at
        hours = (at - started).total_seconds() / 3600.0
        if bool(current.minimum_met(hours, units)):
            nxt = spec.ramp.stages[stage + 1]
            planned = Planned(
                spec.key,
                "advance",
                f"stage {stage + 1} minimum met ({hours:.1f} h, {units} units) and no guardrail "
                f"harm: traffic {current.traffic:g} -> {nxt.traffic:g}",
                {"traffic": nxt.traffic},
                {"hours_in_stage": hours, "units": units, "safety": safety_note},
            )
            return replace(evaluation, summary="stage minimum met", planned=planned)
        return replace(
            evaluation, summary=f"stage {stage + 1}: {hours:.1f} h, {units} units; {safety_note}"
        )

    # 3. the primary decision, when final.
    final = _is_final(spec, units, verdict, result.decision.information_fraction)
    if not final:
        return replace(evaluation, summary=f"{verdict}; {safety_note}")
    automatic = spec.readout.decision == "automatic"
    primary_evidence = _primary_evidence(result)
    if verdict == "ship" and result.decision.winner is not None:
        changes = {"status": "stopped", "winner": result.decision.winner}
        planned = Planned(
            spec.key,
            "ship" if automatic else "propose-ship",
            f"primary decision final: ship {result.decision.winner}",
            changes if automatic else {},
            primary_evidence,
        )
    elif verdict == "roll back":
        planned = Planned(
            spec.key,
            "rollback" if automatic else "propose-rollback",
            "primary decision final: roll back (" + " ".join(result.decision.reasons) + ")",
            _rollback_changes(spec) if automatic else {},
            primary_evidence,
        )
    else:
        planned = Planned(
            spec.key,
            "stop" if automatic else "propose-stop",
            f"primary decision final: {verdict} at the planned sample",
            {"status": "stopped", "winner": exp.control.name} if automatic else {},
            primary_evidence,
        )
    return replace(evaluation, summary=f"final: {verdict}", planned=planned)


def _rollback_changes(spec: ExperimentSpec) -> dict[str, Any]:
    variant = spec.experiment.control.name if spec.safety is None else spec.safety.rollback_variant
    return {"status": "stopped", "winner": variant}


def _is_final(
    spec: ExperimentSpec, units: int, verdict: str, information_fraction: float | None
) -> bool:
    if spec.readout.method == "sequential":
        return verdict in ("ship", "roll back")
    planned = None if spec.metrics is None else spec.metrics.planned_units
    reached = units >= planned if planned is not None else (information_fraction or 0.0) >= 1.0
    return reached and verdict in ("ship", "roll back", "no detectable effect")


def _primary_evidence(result: Any) -> dict[str, Any]:
    rows = [r.to_dict() for r in result.metrics if r.metric == result.primary]
    return {
        "metric": result.primary,
        "verdict": result.decision.verdict,
        "winner": result.decision.winner,
        "reasons": list(result.decision.reasons),
        "readouts": rows,
    }


# --------------------------------------------------------------------------- acting
def run_controller(
    spec_path: str | Path,
    db: str | Store | None = None,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    notifiers: Notifiers | None = None,
    only: Sequence[str] = (),
    refresh: RefreshMode | None = "auto",
) -> RunReport:
    """One controller run over every running experiment of ``spec_path`` (module doc).

    The store's registry snapshot follows the spec (before and after the run), so analyses
    see the declared traffic and variants. ``dry_run`` opens the store read-only and
    writes nothing anywhere.

    Each experiment is evaluated before the run takes the lifecycle lock, with ``refresh``
    (default ``"auto"``: a tick after 1% more data merges that 1% into the experiment's unit
    cache instead of reading every row; ``None`` reads every row). Under the lock the spec
    file is read again and an experiment whose spec version changed meanwhile (another
    controller or a person acted) is evaluated again, in full, before anything is done:
    what is acted on is always the current version's evaluation. (The refresh cannot run
    under the lock: it writes the store, and on SQLite the lock is the store's one writer.)
    """
    at = _now(now)

    def running(specfile: SpecFile) -> list[ExperimentSpec]:
        return [
            s
            for s in specfile.specs.values()
            if s.status == "running" and (not only or s.key in only)
        ]

    problems: dict[str, str] = {}

    def look(spec: ExperimentSpec, store: Store, refresh: RefreshMode | None) -> Evaluation | None:
        problems.pop(spec.key, None)
        try:
            return evaluate(spec, store, now=at, refresh=refresh)
        except AbkitError as exc:
            # one experiment that cannot be read (a metric missing from the data, a broken
            # metrics file) must not keep the others from being rolled back or advanced
            problems[spec.key] = f"{spec.key}: {exc}"
            return None
        except Exception as exc:  # a bug: the same, with its traceback in the log
            log.exception("evaluating %s failed", spec.key)
            problems[spec.key] = f"{spec.key}: unexpected error: {type(exc).__name__}: {exc}"
            return None

    if dry_run:
        # read-only: a dry run neither writes nor upgrades the store
        store = open_store(db, readonly=True)
        looks = [look(s, store, None) for s in running(load_specs(spec_path))]
        plans = tuple(e for e in looks if e is not None)
        return RunReport(plans, (), (), True, errors=tuple(problems.values()))
    store = open_store(db)
    first = load_specs(spec_path)
    store.register_experiments(first.registry.values())
    early = {s.key: (s.version, look(s, store, refresh)) for s in running(first)}
    notify = notifiers or Notifiers()
    evaluations: list[Evaluation] = []
    applied: list[AuditEntry] = []
    already: list[str] = []
    deferred: list[str] = []
    with lifecycle_lock(store) as conn:
        specfile = load_specs(spec_path)
        _record_versions(conn, store, specfile, at)
        for spec in running(specfile):
            version, evaluation = early.get(spec.key, (None, None))
            if version != spec.version:
                evaluation = look(spec, store, None)
            if evaluation is None:
                continue
            evaluations.append(evaluation)
            record_status(
                conn,
                store,
                experiment=spec.key,
                at=at,
                verdict=evaluation.verdict,
                units=evaluation.units,
                stage=evaluation.stage,
                traffic=evaluation.traffic,
                spec_version=spec.version,
                summary=evaluation.summary,
            )
            if evaluation.planned is None:
                continue
            try:
                # the experiment's own savepoint: an edit of its spec during the run undoes
                # its audit row only, not the other experiments' actions
                with conn.begin_nested():
                    entry = _apply(
                        conn, store, specfile, spec, evaluation.planned, "controller", at
                    )
            except StaleSpecError as exc:
                deferred.append(f"{spec.key}: {evaluation.planned.action} not taken ({exc})")
                continue
            if entry is None:
                already.append(f"{spec.key}: {evaluation.planned.action}")
            else:
                applied.append(entry)
    # an early failure of an experiment that is no longer running (stopped meanwhile) is
    # not this run's problem
    still = {s.key for s in running(specfile)}
    problems = {k: v for k, v in problems.items() if k in still}
    errors = [e for entry in applied for e in notify.notify(entry)]
    if applied:
        try:
            store.register_experiments(load_specs(spec_path).registry.values())
        except AbkitError as exc:  # e.g. a person saving a broken file just now
            problems["registry"] = f"the store's registry was not updated: {exc}"
    return RunReport(
        tuple(evaluations),
        tuple(applied),
        tuple(already),
        False,
        tuple(errors),
        errors=tuple(problems.values()),
        deferred=tuple(deferred),
    )


def _record_versions(conn: Connection, store: Store, specfile: SpecFile, at: datetime) -> None:
    for spec in specfile.specs.values():
        record_spec_version(
            conn,
            store,
            experiment=spec.key,
            version=spec.version,
            content=canonical_json(spec.raw),
            file=specfile.path,
            file_hash=specfile.file_hash,
            seen_at=at,
        )


def _apply(
    conn: Connection,
    store: Store,
    specfile: SpecFile,
    spec: ExperimentSpec,
    planned: Planned,
    actor: str,
    at: datetime,
) -> AuditEntry | None:
    """Record the action (once per version) and write the new spec version."""
    if specfile.path is None:
        raise ConfigError("the spec has no file to write the new version to")
    to_version = spec.version
    if planned.changes:
        # Validate the new version before anything is recorded.
        text = apply_changes(specfile, spec.key, planned.changes)
        to_version = specs_from_text(
            text, fmt=specfile.fmt, source=specfile.path, base_dir=Path(specfile.path).parent
        )[spec.key].version
    entry = AuditEntry(
        experiment=spec.key,
        action=planned.action,
        actor=actor,
        at=at,
        from_version=spec.version,
        to_version=to_version,
        reason=planned.reason,
        evidence={**planned.evidence, "changes": dict(planned.changes)},
    )
    recorded = record_action(conn, store, entry)
    if recorded is None:
        return None
    if planned.changes:
        updated = write_spec_version(
            specfile.path, spec.key, planned.changes, expect_version=spec.version
        )
        new = updated[spec.key]
        record_spec_version(
            conn,
            store,
            experiment=spec.key,
            version=new.version,
            content=canonical_json(new.raw),
            file=specfile.path,
            file_hash=updated.file_hash,
            seen_at=at,
        )
    return recorded


def manual_action(
    spec_path: str | Path,
    db: str | Store | None,
    key: str,
    action: Action,
    *,
    actor: str = "manual",
    reason: str = "",
    winner: str | None = None,
    now: datetime | None = None,
    notifiers: Notifiers | None = None,
) -> AuditEntry | None:
    """Pause, resume, roll back, ship or stop one experiment through the controller's path.

    Returns the audit entry, or None when another controller recorded the same action from
    the same state meanwhile. The notifiers are told as the controller's are.
    """
    if action not in MANUAL_ACTIONS:
        raise ConfigError(
            f"manual action must be one of {', '.join(MANUAL_ACTIONS)}, got {action!r}",
            field="action",
        )
    # an existing store only: a typo in the URL must not record the action in a new one
    store = open_store(db, create=False)
    at = _now(now)
    with lifecycle_lock(store) as conn:
        specfile = load_specs(spec_path)
        _record_versions(conn, store, specfile, at)
        spec = specfile[key]
        changes = _manual_changes(spec, action, winner)
        planned = Planned(key, action, reason or f"{action} by {actor}", changes, {})
        entry = _apply(conn, store, specfile, spec, planned, actor, at)
    if entry is not None:
        (notifiers or Notifiers()).notify(entry)
    return entry


def _manual_changes(spec: ExperimentSpec, action: Action, winner: str | None) -> dict[str, Any]:
    status = spec.status
    allowed = {
        "pause": ("running",),
        "resume": ("paused",),
        "rollback": ("running", "paused"),
        "ship": ("running", "paused"),
        "stop": ("running", "paused", "draft"),
    }[action]
    if status not in allowed:
        raise ConfigError(
            f"experiment {spec.key!r} is {status}; {action} needs {' or '.join(allowed)}",
            file=spec.file,
            field="status",
        )
    if action == "pause":
        return {"status": "paused"}
    if action == "resume":
        return {"status": "running"}
    if action == "rollback":
        return _rollback_changes(spec)
    if action == "ship":
        names = spec.experiment.variant_names
        if winner is None or winner not in names:
            raise ConfigError(
                f"ship needs the winning variant ({', '.join(names)}), got {winner!r}",
                field="winner",
            )
        return {"status": "stopped", "winner": winner}
    return {"status": "stopped", "winner": spec.experiment.control.name}
