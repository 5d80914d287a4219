"""The end-to-end demo: a recommender model experiment from assignment to executive report.

Story: an e-commerce site tests a new recommendation model against the current one.

* ``ship`` scenario (default), experiment ``recommender-v2``: model v2 raises the
  conversion rate by 10% (relative) and order value by 2%, and leaves client errors
  alone. The report recommends shipping it.
* ``guardrail-breach`` scenario, experiment ``recommender-v3``: a larger model v3 lifts
  conversion too (+6%), but it is slower: every recommendation request takes 30% longer
  (the p95 latency guardrail, a quantile metric of clustered request events) and the
  timeouts raise client errors per user by 25%. The report shows the trade-off (more
  conversions, a slower tail) and recommends rolling back.

``recommender-v3`` declares two guardrails, ``errors_per_user`` (a mean) and ``p95_latency``
(the 95th percentile of request latency in milliseconds, a quantile of request events
clustered by user), and both are in the safety policy the controller checks at every look
(:mod:`abkit.lifecycle.safety`). ``recommender-v2`` logs no request latencies and keeps the
errors guardrail only: a quantile is re-ranked in the database at every look, and the
default demo stays as fast as it was.

What runs, in order (every step is the production code path, nothing is mocked):

1. :func:`abkit.simulate.simulate_experiment` draws users and their behaviour
   with known true effects, assigning every user with :func:`abkit.assign` at the
   moment of their first exposure (``via_service=True``);
2. each assignment fires the exposure hook, where a :class:`abkit.ingest.tracker.Tracker`
   buffers the exposure records and ingests them in batches;
3. the users' events (purchases, errors) are ingested with :func:`abkit.ingest.ingest`;
4. :func:`abkit.analysis.analyze.analyze` reads the SQLite store; the executive template
   is rendered to ``reports/<experiment>.html`` by :func:`abkit.report.render_report`.

The demo writes its own SQLite file (``abkit-demo.db`` by default), deleted and rebuilt
on every run, so running it twice gives the same report and never touches other data.

Every experiment is declared in one spec file, ``reports/experiments.toml`` (its metrics,
with the guardrail, business value, readout, ramp and safety policy; the metric definitions
live in the shared catalog ``reports/<experiment>.metrics.toml``). ``abkit analyze --spec``,
``abkit report`` and the notebooks read the same declarations, so they give one verdict.

With ``loop=True`` (what ``abkit demo`` runs) the experiment goes through the closed loop
instead of a fixed 50/50 launch (:func:`abkit.lifecycle.loop.run_loop`): a simulated service
serves the spec file hour by hour, the controller ramps it 1% -> 5% -> 20% -> 50%, and
either ships it at its planned sample (``ship``) or rolls it back as soon as the guardrail
shows harm (``guardrail-breach``), writing a new spec version and an audit entry each time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from abkit.errors import ConfigError

DEFAULT_DB = "abkit-demo.db"
DEFAULT_REPORTS = "reports"
# How the demo projects business impact; `abkit demo` prints the matching CLI options so a
# re-render shows the same currency amounts.
DEMO_BUSINESS = {"metric": "revenue_per_user", "period": "year", "currency": "USD"}


@dataclass(frozen=True)
class Scenario:
    """One demo experiment with its true effects."""

    name: str
    key: str
    control: str
    treatment: str
    control_model: str
    treatment_model: str
    conversion_lift: float
    order_value_lift: float
    guardrail_effect: float
    latency_effect: float | None  # None: no request latencies logged, no latency guardrail
    hypothesis: str
    description: str
    expected_verdict: str


SCENARIOS: dict[str, Scenario] = {
    "ship": Scenario(
        name="ship",
        key="recommender-v2",
        control="v1",
        treatment="v2",
        control_model="recsys-v1.4 (item-to-item collaborative filtering)",
        treatment_model="recsys-v2.0 (two-tower retrieval + ranking)",
        conversion_lift=0.10,
        order_value_lift=0.02,
        guardrail_effect=0.0,
        latency_effect=None,
        hypothesis="Recommendations from the v2 model raise the share of visitors who buy "
        "within 7 days, without more client errors.",
        description="Home-page and product-page recommendations: current model v1 against "
        "the new two-tower model v2.",
        expected_verdict="ship",
    ),
    "guardrail-breach": Scenario(
        name="guardrail-breach",
        key="recommender-v3",
        control="v1",
        treatment="v3",
        control_model="recsys-v1.4 (item-to-item collaborative filtering)",
        treatment_model="recsys-v3.0-large (transformer ranking, 4x parameters)",
        conversion_lift=0.06,
        order_value_lift=0.0,
        guardrail_effect=0.25,
        latency_effect=0.30,
        hypothesis="The larger v3 model raises conversion; it must not make recommendations "
        "slower (p95 latency) nor raise client errors (timeouts).",
        description="Product-page recommendations: current model v1 against the large "
        "transformer model v3.",
        expected_verdict="roll back",
    ),
}

DEMO_METRICS_TOML = """\
# Metrics of the abkit demo (written by `abkit demo`).
[[metric]]
builtin = "conversion_rate"
role = "primary"
# the team planned to detect a 10% relative lift; the demo collects that sample
mde = 0.10

[[metric]]
builtin = "revenue_per_user"

[[metric]]
builtin = "orders_per_user"

[[metric]]
builtin = "average_order_value"

[[metric]]
name = "errors_per_user"
type = "mean"
event = "error"
aggregate = "count"
window = "7d"
direction = "lower"
role = "guardrail"
mde = 0.05
description = "client errors (timeouts, crashes) per exposed user within 7 days"
"""

# The latency guardrail of a scenario whose model changes latency (appended to the above).
LATENCY_METRIC_TOML = """
[[metric]]
name = "p95_latency"
type = "quantile"
event = "request"
probability = 0.95
window = "7d"
direction = "lower"
role = "guardrail"
unit = "duration"
description = "95th percentile of recommendation request latency (ms), requests clustered by user"
"""


# The loop's simulated users: eligible users per day is ``n_units``; these are the control
# arm's true rates (the treatment applies the scenario's lifts).
LOOP_CONVERSION = 0.20
LOOP_ERRORS_PER_USER = 0.8
LOOP_ORDER_VALUE = 40.0
LATENCY_MS = 180.0  # the control's median recommendation request latency
REQUESTS_PER_USER = 2.0  # requests beyond the first, per user (Poisson mean)
LOOP_PLANNED_UNITS = 20_000  # about 95% power for the +10% conversion lift at alpha 0.05
LOOP_STAGES = (
    {"traffic": 0.01, "min_hours": 24},
    {"traffic": 0.05, "min_hours": 24},
    {"traffic": 0.20, "min_hours": 24},
    {"traffic": 0.50},
)


def demo_metrics_toml(scenario: Scenario) -> str:
    """The scenario's metric catalog: the latency guardrail only where latency is logged."""
    if scenario.latency_effect is None:
        return DEMO_METRICS_TOML
    return DEMO_METRICS_TOML + LATENCY_METRIC_TOML


def demo_spec_entry(
    scenario: Scenario, start: datetime, end: datetime | None, *, catalog: str, loop: bool
) -> dict[str, Any]:
    """The demo experiment's spec: everything the analysis, report and controller read."""
    entry: dict[str, Any] = {
        "key": scenario.key,
        "owner": "Recommendations team (demo)",
        "description": scenario.description,
        "hypothesis": scenario.hypothesis,
        "tags": ["demo", "recommender"],
        "status": "running",
        "start": start.isoformat().replace("+00:00", "Z"),
        "variants": [
            {"name": scenario.control, "weight": 0.5, "payload": {"model": scenario.control_model}},
            {
                "name": scenario.treatment,
                "weight": 0.5,
                "payload": {"model": scenario.treatment_model},
            },
        ],
        "metrics": {
            "catalog": catalog,
            "primary": "conversion_rate",
            "secondary": ["revenue_per_user", "orders_per_user", "average_order_value"],
            "guardrails": [{"metric": "errors_per_user", "direction": "lower"}],
            "mde": 0.10,
        },
        "business": {
            "metric": DEMO_BUSINESS["metric"],
            "currency": DEMO_BUSINESS["currency"],
            "period": DEMO_BUSINESS["period"],
        },
        "readout": {"method": "fixed", "decision": "automatic"},
        "safety": {
            "guardrails": ["errors_per_user"],
            "alpha": 0.05,
            "rollback_variant": scenario.control,
        },
    }
    if scenario.latency_effect is not None:  # the p95 latency guardrail, checked at every look
        entry["metrics"]["guardrails"].append({"metric": "p95_latency", "direction": "lower"})
        entry["safety"]["guardrails"].append("p95_latency")
    if end is not None:
        entry["end"] = end.isoformat().replace("+00:00", "Z")
    if loop:
        entry["traffic"] = LOOP_STAGES[0]["traffic"]
        entry["metrics"]["planned_units"] = LOOP_PLANNED_UNITS
        entry["ramp"] = {"stages": [dict(s) for s in LOOP_STAGES]}
    return entry


def write_demo_spec(path: Path, entry: dict[str, Any], *, fresh: bool) -> None:
    """Write (or, not ``fresh``, update) the demo's spec file with one experiment."""
    import tomlkit

    entries: list[dict[str, Any]] = []
    if not fresh and path.exists():
        entries = [
            e
            for e in tomlkit.parse(path.read_text("utf-8")).unwrap().get("experiments", [])
            if e.get("key") != entry["key"]
        ]
    entries.append(entry)
    header = "# The demo's experiment specs (written by `abkit demo`; reference: docs/spec.md).\n"
    path.write_text(header + tomlkit.dumps({"experiments": entries}), encoding="utf-8")


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced, with timings in seconds."""

    scenario: str
    experiment: str
    db_url: str
    report: Path
    verdict: str
    exposures: int
    events: int
    seconds: dict[str, float]
    spec: Path | None = None
    actions: tuple[str, ...] = ()  # the controller's actions, in order (loop only)
    status: str = "running"  # the experiment's status in the spec at the end


def _remove_demo_database(path: Path) -> None:
    """Delete a previous demo database; never a file holding anything else."""
    if path.exists():
        from sqlalchemy import column, create_engine, inspect, select, table
        from sqlalchemy.exc import SQLAlchemyError

        demo_keys = {s.key for s in SCENARIOS.values()}
        engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
        try:
            with engine.connect() as conn:
                names = inspect(conn).get_table_names()
                keys: set[str] = set()
                if "abkit_experiments" in names:
                    experiments = table("abkit_experiments", column("key"))
                    keys = {str(k) for (k,) in conn.execute(select(experiments.c.key))}
        except SQLAlchemyError as exc:
            raise ConfigError(
                f"refusing to replace {path}: it is not an abkit demo database ({exc.__class__.__name__})",
                file=str(path),
            ) from None
        finally:
            engine.dispose()
        foreign = [n for n in names if not n.startswith("abkit_")]
        if foreign or not keys <= demo_keys:
            what = foreign or sorted(keys - demo_keys)
            raise ConfigError(
                f"refusing to replace a database that holds other data ({', '.join(what)}); "
                "give the demo its own --db",
                file=str(path),
            )
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)


def run_demo(
    scenario: str = "ship",
    *,
    db: str | Path = DEFAULT_DB,
    reports_dir: str | Path = DEFAULT_REPORTS,
    n_units: int = 40_000,
    days: int = 14,
    seed: int = 7,
    render: bool = True,
    fresh: bool = True,
    log: Any = None,
    loop: bool = False,
) -> DemoResult:
    """Run one demo scenario end to end and return where the report is.

    ``db`` is a SQLite file path, rebuilt when ``fresh`` (refused if it holds experiments
    other than the demo's), or a SQLAlchemy URL used as is. ``log`` receives progress lines.
    ``loop``: run the closed loop (ramp, controller, rollback or ship; ``n_units`` eligible
    users per day for at most ``days`` days) instead of a fixed 50/50 launch of ``n_units``
    users over ``days`` days. The spec file is ``reports_dir/experiments.toml``.
    """
    from abkit.assignment.exposure import add_exposure_hook, remove_exposure_hook
    from abkit.ingest.ingestor import ingest
    from abkit.ingest.tracker import Tracker
    from abkit.simulate import TrueEffect, simulate_experiment
    from abkit.store.store import open_store

    if scenario not in SCENARIOS:
        raise ConfigError(
            f"unknown demo scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}",
            field="scenario",
        )
    spec = SCENARIOS[scenario]
    say = log or (lambda _line: None)
    timings: dict[str, float] = {}

    db_text = str(db)
    if "://" in db_text:
        db_url = db_text
    else:
        path = Path(db_text).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            _remove_demo_database(path)  # re-running gives the same report
        db_url = f"sqlite:///{path}"

    # Start in the past (midnight UTC) so every event is in the past when ingested.
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days + 1 if loop else days + 8)
    store = open_store(db_url)
    metrics_path = Path(reports_dir) / f"{spec.key}.metrics.toml"
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(demo_metrics_toml(spec), encoding="utf-8")
    spec_path = Path(reports_dir) / "experiments.toml"
    # exposures for `days`, then the 7-day window (the loop stops the experiment itself)
    end = None if loop else start + timedelta(days=days + 8)
    entry = demo_spec_entry(spec, start, end, catalog=metrics_path.name, loop=loop)
    write_demo_spec(spec_path, entry, fresh=fresh)
    from abkit.lifecycle.spec import load_specs

    store.register_experiments([load_specs(spec_path).registry[spec.key]])
    if loop:
        try:
            run = _run_loop(spec, spec_path, store, start, n_units, days, seed, say)
        finally:
            store.close()
        return _finish(spec, db_url, spec_path, metrics_path, reports_dir, render, run, say)
    try:
        t0 = time.perf_counter()
        say(
            f"simulating {n_units:,} users in {spec.key} ({spec.control} vs {spec.treatment}), "
            "assigning each with abkit.assign ..."
        )
        tracker = Tracker(db=store, flush_every=10_000, source_name="demo-service")
        hook = add_exposure_hook(tracker.expose)
        try:
            sim = simulate_experiment(
                n_units,
                key=spec.key,
                variants=(spec.control, spec.treatment),
                weights=(0.5, 0.5),
                effects=TrueEffect(
                    conversion_lift=spec.conversion_lift,
                    order_value_lift=spec.order_value_lift,
                    guardrail_effect=spec.guardrail_effect,
                    latency_effect=spec.latency_effect or 0.0,
                ),
                impressions=0.0,  # the demo's metrics do not use impressions or clicks
                requests=0.0 if spec.latency_effect is None else REQUESTS_PER_USER,
                latency_ms=LATENCY_MS,
                days=days,
                start=start,
                via_service=True,
                # Users of different demo experiments must not share ids: events are not
                # tied to an experiment, so shared ids would mix the two experiments' data.
                unit_prefix=f"{spec.key}/user-",
                seed=seed,
            )
        finally:
            remove_exposure_hook(hook)
        timings["simulate+assign"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        tracker.close()  # flushes the last exposures through ingest
        exposures = sum(int(r.accepted) for r in tracker.reports)
        events_report = ingest(
            sim.events[["unit_id", "event_type", "value", "timestamp"]],
            db=store,
            kind="events",
            source_name="demo-events",
        )
        timings["ingest"] = time.perf_counter() - t0
        say(
            f"ingested {exposures:,} exposures (via the exposure hook) and "
            f"{int(events_report.accepted):,} events into {db_url}"
        )
    finally:
        store.close()

    report_path = Path(reports_dir) / f"{spec.key}.html"
    verdict = ""
    if render:
        verdict, report_path, timings["analyse+render"] = _render(
            spec, db_url, report_path, metrics_path
        )
    return DemoResult(
        scenario=spec.name,
        experiment=spec.key,
        db_url=db_url,
        report=report_path,
        verdict=verdict,
        exposures=exposures,
        events=int(events_report.accepted),
        seconds=timings,
        spec=spec_path,
    )


def _run_loop(
    scenario: Scenario,
    spec_path: Path,
    store: Any,
    start: datetime,
    n_units: int,
    days: int,
    seed: int,
    say: Any,
) -> Any:
    from abkit.lifecycle.controller import Notifiers
    from abkit.lifecycle.loop import Behaviour, run_loop

    latency = scenario.latency_effect
    control = Behaviour(
        LOOP_CONVERSION,
        LOOP_ERRORS_PER_USER,
        LOOP_ORDER_VALUE,
        latency_ms=None if latency is None else LATENCY_MS,
    )
    treatment = Behaviour(
        LOOP_CONVERSION * (1 + scenario.conversion_lift),
        LOOP_ERRORS_PER_USER * (1 + scenario.guardrail_effect),
        LOOP_ORDER_VALUE * (1 + scenario.order_value_lift),
        latency_ms=None if latency is None else LATENCY_MS * (1 + latency),
    )
    say(
        f"serving {scenario.key} from {spec_path} to {n_units:,} eligible users a day; the "
        "exposure hook logs each enrolled assignment; the controller looks every 6 hours ..."
    )
    t0 = time.perf_counter()
    run = run_loop(
        spec_path,
        store,
        scenario.key,
        {scenario.control: control, scenario.treatment: treatment},
        start=start,
        hours=days * 24,
        users_per_hour=n_units / 24,
        control_every=6,
        seed=seed,
        notifiers=Notifiers(audit_log=spec_path.with_name(spec_path.name + ".audit.jsonl")),
    )
    for action in run.actions:
        say(f"controller {action.at:%a %H:%M}: {action.action}: {action.reason}")
        if action.action == "rollback":
            treated = run.enrolled_before_first_stop.get(scenario.treatment, 0)
            say(
                f"{treated:,} users were served {scenario.treatment} before the rollback; a fixed "
                f"50/50 launch read at its planned {LOOP_PLANNED_UNITS:,} units would have "
                f"served it to {LOOP_PLANNED_UNITS // 2:,}"
            )
    say(
        f"{run.hours} simulated hours, {time.perf_counter() - t0:.1f} s: ingested "
        f"{run.exposures:,} exposures (via the exposure hook) and {run.events:,} events"
    )
    return run


def _finish(
    scenario: Scenario,
    db_url: str,
    spec_path: Path,
    metrics_path: Path,
    reports_dir: str | Path,
    render: bool,
    run: Any,
    say: Any,
) -> DemoResult:
    from abkit.lifecycle.spec import load_specs

    final = load_specs(spec_path)[scenario.key]
    report_path = Path(reports_dir) / f"{scenario.key}.html"
    verdict = ""
    timings: dict[str, float] = {}
    if render:
        verdict, report_path, timings["analyse+render"] = _render(
            scenario, db_url, report_path, metrics_path
        )
    status = (
        final.status
        if final.experiment.winner is None
        else (f"{final.status}, serving {final.experiment.winner}")
    )
    say(f"{scenario.key} is now {status} (spec {spec_path})")
    return DemoResult(
        scenario=scenario.name,
        experiment=scenario.key,
        db_url=db_url,
        report=report_path,
        verdict=verdict,
        exposures=run.exposures,
        events=run.events,
        seconds=timings,
        spec=spec_path,
        actions=tuple(a.action for a in run.actions),
        status=final.status,
    )


def _render(
    scenario: Scenario, db_url: str, report_path: Path, metrics_path: Path
) -> tuple[str, Path, float]:
    """Render the executive report; (verdict, path, seconds)."""
    from abkit.report.render import render_report
    from abkit.report.sections import read_report_data

    t0 = time.perf_counter()
    rendered = render_report(
        db_url,
        scenario.key,
        out=report_path,
        metrics=metrics_path,
        title=f"Recommender experiment: {scenario.control} vs {scenario.treatment}",
        business=dict(DEMO_BUSINESS),
    )
    data = read_report_data(rendered.path.read_text(encoding="utf-8"))
    return data["decision"]["verdict"], rendered.path, time.perf_counter() - t0
