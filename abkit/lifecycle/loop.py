"""The closed loop through the real path, hour by simulated hour (tests and the demo).

Every simulated hour:

1. a simulated service follows the spec file through
   :class:`abkit.assignment.live.LiveRegistry` (with the spec's loader
   :func:`abkit.lifecycle.spec.service_registry`; one poll per simulated hour) and assigns
   each arriving user with :func:`abkit.assign`; the exposure hook collects the exposures;
2. each enrolled user's behaviour is drawn from the variant's true rates (a purchase with
   probability ``conversion``, ``Poisson(errors)`` client errors), and exposures and events
   are ingested into the store with :func:`abkit.ingest.ingest`;
3. every ``control_every`` hours the controller runs (:func:`run_controller`) at the
   simulated time, and may write a new spec version that the service reads next hour.

Nothing is mocked but the users and the clock. The result says what the service served,
what the controller did, and how many users saw each variant before it acted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from abkit.assignment.assign import assign
from abkit.assignment.exposure import ExposureRecord, add_exposure_hook, remove_exposure_hook
from abkit.assignment.live import LiveRegistry
from abkit.ingest.ingestor import ingest
from abkit.lifecycle.audit import AuditEntry
from abkit.lifecycle.controller import Notifiers, run_controller
from abkit.lifecycle.spec import service_registry
from abkit.store.store import Store


@dataclass(frozen=True)
class Behaviour:
    """True rates of one variant: purchase probability, mean errors per user, order value;
    ``latency_ms``: median request latency (None: no request events); each user makes
    1 + Poisson(2) requests."""

    conversion: float
    errors: float
    order_value: float = 40.0
    latency_ms: float | None = None


@dataclass(frozen=True)
class LoopRun:
    """What happened: actions taken, units enrolled per variant before each action."""

    actions: tuple[AuditEntry, ...]
    enrolled: Mapping[str, int]  # units enrolled per variant over the whole run
    enrolled_before_first_stop: Mapping[str, int]
    served_last_hour: Mapping[str, int]  # variants served to every request of the last hour
    reshuffled: int  # returning units whose variant changed while the experiment ran
    hours: int  # simulated hours actually run
    exposures: int  # exposure rows accepted by the store
    events: int  # event rows accepted by the store


def run_loop(
    spec_path: str | Path,
    store: Store,
    key: str,
    behaviour: Mapping[str, Behaviour],
    *,
    start: datetime,
    hours: int,
    users_per_hour: float,
    control_every: int = 1,
    returning_share: float = 0.3,
    seed: int = 0,
    notifiers: Notifiers | None = None,
    linger_hours: int = 2,
) -> LoopRun:
    """Simulate up to ``hours`` hours of service, ingestion and controller (module
    docstring); the run ends ``linger_hours`` after the experiment is stopped."""
    rng = np.random.default_rng(seed)
    path = Path(spec_path)
    exposures: list[ExposureRecord] = []
    live = LiveRegistry(path, loader=service_registry, start=False)
    hook = add_exposure_hook(exposures.append)
    first_variant: dict[str, str] = {}
    enrolled: Counter[str] = Counter()
    counted: set[str] = set()
    pending_exposures: list[ExposureRecord] = []
    pending_events: list[pd.DataFrame] = []
    ingested = np.zeros(2, dtype=np.int64)  # exposures, events accepted by the store
    before_stop: dict[str, int] | None = None
    actions: list[AuditEntry] = []
    reshuffled = 0
    served: Counter[str] = Counter()
    next_id = 0
    try:
        stopped_at: int | None = None
        hours_run = 0
        for hour in range(hours):
            if stopped_at is not None and hour >= stopped_at + linger_hours:
                break
            hours_run = hour + 1
            now = start + timedelta(hours=hour)
            live.refresh()  # the poll of the service's live registry
            experiment = live[key]
            running = experiment.status == "running"
            served = Counter()
            arrivals = int(rng.poisson(users_per_hour))
            returning = int(rng.binomial(arrivals, returning_share)) if first_variant else 0
            known = list(first_variant)
            ids = [known[i] for i in rng.integers(0, len(known), size=returning)] if known else []
            ids += [f"{key}/user-{next_id + i}" for i in range(arrivals - len(ids))]
            next_id += arrivals - returning
            exposures.clear()
            for offset, unit in enumerate(ids):
                at = now + timedelta(seconds=offset * 3600 / max(len(ids), 1))
                answer = assign(experiment, unit, now=at)
                served[answer.variant] += 1
                if not answer.in_experiment:
                    continue
                seen = first_variant.setdefault(unit, answer.variant)
                if seen != answer.variant and running:
                    reshuffled += 1
            new = [r for r in exposures if r.unit_id not in counted]
            for record in new:
                counted.add(record.unit_id)
                enrolled[record.variant] += 1
            pending_exposures.extend(exposures)
            pending_events.append(_behaviour_events(new, behaviour, rng))
            if (hour + 1) % control_every == 0:
                # The service's tracker flushes in batches; the controller then looks.
                ingested += _flush(store, pending_exposures, pending_events, hour)
                report = run_controller(
                    path, store, now=now + timedelta(hours=1), notifiers=notifiers, only=(key,)
                )
                actions.extend(report.applied)
                if before_stop is None and any(
                    e.action in ("rollback", "ship", "stop") for e in report.applied
                ):
                    before_stop = dict(enrolled)
                    stopped_at = hour + 1
        ingested += _flush(store, pending_exposures, pending_events, hours_run)
    finally:
        remove_exposure_hook(hook)
        live.close()
    return LoopRun(
        actions=tuple(actions),
        enrolled=dict(enrolled),
        enrolled_before_first_stop=before_stop if before_stop is not None else dict(enrolled),
        served_last_hour=dict(served),
        reshuffled=reshuffled,
        hours=hours_run,
        exposures=int(ingested[0]),
        events=int(ingested[1]),
    )


def _flush(
    store: Store, exposures: list[ExposureRecord], events: list[pd.DataFrame], hour: int
) -> tuple[int, int]:
    """Ingest what the service buffered; (exposures, events) accepted."""
    accepted = [0, 0]
    if exposures:
        report = ingest(list(exposures), db=store, kind="exposures", source_name=f"service-{hour}")
        accepted[0] = int(report.accepted)
    frames = [e for e in events if len(e)]
    if frames:
        frame = pd.concat(frames, ignore_index=True)
        accepted[1] = int(
            ingest(frame, db=store, kind="events", source_name=f"events-{hour}").accepted
        )
    exposures.clear()
    events.clear()
    return accepted[0], accepted[1]


def _behaviour_events(
    records: list[ExposureRecord], behaviour: Mapping[str, Behaviour], rng: np.random.Generator
) -> pd.DataFrame:
    rows: list[tuple[str, str, float | None, datetime]] = []
    for record in records:
        b = behaviour[record.variant]
        if rng.random() < b.conversion:
            value = float(rng.lognormal(np.log(b.order_value), 0.5))
            rows.append((record.unit_id, "purchase", round(value, 2), _later(record, rng)))
        for _ in range(int(rng.poisson(b.errors))):
            rows.append((record.unit_id, "error", None, _later(record, rng)))
        if b.latency_ms is not None:
            # requests clustered by user: a per-user speed factor, then per-request noise
            user = rng.normal(0.0, 0.3)
            for _ in range(1 + int(rng.poisson(2.0))):
                value = float(np.exp(np.log(b.latency_ms) + user + rng.normal(0.0, 0.4)))
                rows.append((record.unit_id, "request", round(value, 1), _later(record, rng)))
    return pd.DataFrame(rows, columns=["unit_id", "event_type", "value", "timestamp"])


def _later(record: ExposureRecord, rng: np.random.Generator) -> datetime:
    return record.timestamp + timedelta(minutes=float(rng.uniform(1, 50)))
