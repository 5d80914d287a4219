"""Simulated experiments with known true effects, for tests, benchmarks and the demo.

Units are assigned by the real assignment code (``abkit.assignment.assign_many``, or
``assign`` one unit at a time with exposure hooks firing when ``via_service=True``), so a
simulated experiment exercises the same path as production traffic. Everything else is
vectorised numpy.

Generative model, per unit ``i`` in arm ``a`` (control first), window ``W``:

* purchase propensity ``q_i ~ Beta(p·κ, (1-p)·κ)`` (mean ``p``; small ``κ`` = more
  heterogeneous units = stronger pre/post correlation, which CUPED exploits);
* converts in the window: control if ``U < q_i``; a treatment with relative lift ``L >= 0``
  also converts the others with probability ``δ = p·L/(1-p)``; with ``L < 0`` a control
  conversion is kept with probability ``1 + L``. Either way ``P(convert) = p·(1+L)``
  exactly;
* a converter makes ``1 + Poisson(μ)`` orders; order value ``m_a · v_i · e``, with a unit
  multiplier ``v_i`` and an order noise ``e``, both log-normal with mean 1 (``v_i`` is
  shared with the pre-period);
* the first order ``Uniform(0, 0.9·W)`` after first exposure, later orders after it;
* ``Poisson(λ_imp)`` impressions, each clicked with probability ``ctr·(1+C)``;
* guardrail: ``Poisson(λ_err · g_i · (1+G))`` error events, ``g_i ~ Gamma(2, 1/2)``
  (mean 1, shared with the pre-period);
* pre-period (``W`` before first exposure): purchases and errors from the same ``q_i``,
  ``v_i``, ``g_i`` with no treatment effect;
* requests (only with ``requests > 0``): ``1 + Poisson(requests)`` request events in the
  window, each with a latency ``value = ℓ·(1+R)·s_i·e`` (milliseconds), a per-unit speed
  ``s_i`` (log-sd 0.3) and a per-request noise ``e`` (log-sd 0.4), both log-normal with
  median 1; drawn from a generator of their own, so turning them on leaves every other
  draw as it was.

True values (``SimulatedExperiment.truth``), with ``p_a = p(1+L_a)``, ``m_a = m(1+A_a)``:
conversion ``p_a``; orders per user ``p_a(1+μ)``; revenue per user ``p_a(1+μ)m_a``;
average order value ``m_a``; repeat-purchase rate ``p_a(1-e^{-μ})``; click-through rate
``ctr(1+C_a)``; errors per user ``λ_err(1+G_a)``; time to convert ``0.45·W`` hours;
with requests, the ``p`` quantile of request latency ``ℓ(1+R_a)·exp(0.5·Φ⁻¹(p))`` (the
request counts do not depend on ``s_i``, so the event-level log-latency is normal with sd
``√(0.3² + 0.4²) = 0.5``): ``p50_latency``, ``p95_latency`` and ``p99_latency``.

Planted problems: ``srm`` drops that fraction of the last arm's exposures (a logging
loss); ``multiple_exposure_rate`` exposes that fraction of units to a second variant as
well (they must be excluded); ``late_event_rate`` adds purchases after the window (they
must not count); ``guardrail_effect`` breaches the guardrail.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from abkit.metrics.definitions import Metric, mean
from abkit.metrics.library import builtin_metric
from abkit.timeutil import MICROS_PER_HOUR, to_us

DEFAULT_START = datetime(2026, 1, 5, tzinfo=timezone.utc)
PLATFORMS = ("ios", "android", "web")
PLATFORM_P = (0.35, 0.40, 0.25)
COUNTRIES = ("US", "DE", "FR", "BR", "IN")
COUNTRY_P = (0.4, 0.15, 0.15, 0.15, 0.15)


# Request latency: log-sd of the per-unit speed and of the per-request noise.
LATENCY_UNIT_SD = 0.3
LATENCY_REQUEST_SD = 0.4


def true_latency_quantile(median_ms: float, probability: float) -> float:
    """The ``probability`` quantile of simulated request latency with median ``median_ms``:
    the event-level log-latency is normal with sd ``√(0.3² + 0.4²)`` (module docstring)."""
    from scipy.special import ndtri

    sd = math.hypot(LATENCY_UNIT_SD, LATENCY_REQUEST_SD)
    return float(median_ms * math.exp(sd * float(ndtri(probability))))


@dataclass(frozen=True)
class TrueEffect:
    """Relative true effects of one treatment arm against control."""

    conversion_lift: float = 0.0
    order_value_lift: float = 0.0
    ctr_lift: float = 0.0
    guardrail_effect: float = 0.0  # relative change in errors per user (> 0 is harm)
    latency_effect: float = 0.0  # relative change in every request's latency (> 0: slower)

    def __post_init__(self) -> None:
        for name in (
            "conversion_lift",
            "order_value_lift",
            "ctr_lift",
            "guardrail_effect",
            "latency_effect",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > -1):
                raise ValueError(f"{name} must be > -1, got {value!r}")


@dataclass(frozen=True)
class SimulatedExperiment:
    """A simulated experiment: its config, the rows to ingest, and the truth."""

    experiment: Any  # abkit.assignment.config.Experiment
    exposures: Any  # pandas.DataFrame: unit_id, experiment, variant, timestamp, ts_us, attributes
    events: Any  # pandas.DataFrame: unit_id, event_type, value, timestamp, ts_us
    truth: dict[str, dict[str, float]]  # metric -> {variant: true value}
    planted: dict[str, Any] = field(default_factory=dict)
    metrics: tuple[Metric, ...] = ()
    unit_prefix: str = "u"

    def true_lift(self, metric: str, variant: str, *, relative: bool = False) -> float:
        control = self.experiment.variant_names[0]
        t, c = self.truth[metric][variant], self.truth[metric][control]
        return (t / c - 1.0) if relative else (t - c)


def simulation_metrics(window: str = "7d") -> tuple[Metric, ...]:
    """The metrics the simulator knows the truth of (revenue uncapped so it is unbiased)."""
    return (
        builtin_metric("conversion_rate").with_(role="primary", window=window),
        builtin_metric("revenue_per_user").with_(cap_percentile=None, window=window),
        builtin_metric("orders_per_user").with_(window=window),
        builtin_metric("average_order_value").with_(window=window),
        builtin_metric("repeat_purchase_rate").with_(window=window),
        builtin_metric("click_through_rate").with_(window=window),
        builtin_metric("time_to_convert").with_(window=window),
        mean(
            "errors_per_user",
            "error",
            aggregate="count",
            window=window,
            direction="lower",
            role="guardrail",
            description="client errors per exposed unit",
        ),
    )


def _effects_for(
    names: Sequence[str], effects: TrueEffect | Mapping[str, TrueEffect] | None
) -> dict[str, TrueEffect]:
    out = {names[0]: TrueEffect()}
    for name in names[1:]:
        if effects is None:
            out[name] = TrueEffect()
        elif isinstance(effects, TrueEffect):
            out[name] = effects
        else:
            out[name] = effects.get(name, TrueEffect())
    return out


def simulate_experiment(
    n_units: int = 20_000,
    *,
    key: str = "checkout-redesign",
    variants: Sequence[str] = ("control", "treatment"),
    weights: Sequence[float] | None = None,
    effects: TrueEffect | Mapping[str, TrueEffect] | None = None,
    conversion_rate: float = 0.10,
    extra_orders: float = 0.4,
    order_value: float = 50.0,
    order_value_sigma: float = 0.6,
    unit_value_sigma: float = 0.5,
    impressions: float = 4.0,
    ctr: float = 0.08,
    errors: float = 0.5,
    requests: float = 0.0,
    latency_ms: float = 200.0,
    heterogeneity: float = 2.0,
    days: int = 14,
    window_days: float = 7.0,
    start: datetime = DEFAULT_START,
    pre_period: bool = True,
    srm: float = 0.0,
    multiple_exposure_rate: float = 0.0,
    repeat_exposures: float = 0.3,
    late_event_rate: float = 0.05,
    via_service: bool = False,
    unit_prefix: str = "u",
    seed: int = 0,
) -> SimulatedExperiment:
    """Simulate an experiment with known effects (see the module docstring for the model).

    ``effects`` is one :class:`TrueEffect` for every treatment arm or a mapping by name.
    ``requests`` is the mean number of request events beyond the first per unit (0: no
    request events) and ``latency_ms`` the control's median request latency.
    ``via_service=True`` assigns each unit with ``abkit.assign`` at its exposure time so
    registered exposure hooks (for example a ``Tracker``) see every first exposure; the
    returned ``exposures`` frame holds the same rows either way.
    """
    import pandas as pd

    from abkit.assignment.assign import assign, assign_many
    from abkit.assignment.config import Experiment, Variant

    if n_units < 2:
        raise ValueError("n_units must be >= 2")
    if not 0 < conversion_rate < 1:
        raise ValueError("conversion_rate must be in (0, 1)")
    for name, value in (("srm", srm), ("multiple_exposure_rate", multiple_exposure_rate)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1)")
    rng = np.random.default_rng(seed)
    names = tuple(variants)
    experiment = Experiment(
        key=key,
        variants=tuple(
            Variant(n, None if weights is None else float(weights[i])) for i, n in enumerate(names)
        ),
        description="simulated experiment with known true effects",
        hypothesis="the treatment changes conversion and order value",
        owner="abkit.simulate",
        tags=("simulation",),
    )
    arm_effects = _effects_for(names, effects)
    window_us = round(window_days * 24 * MICROS_PER_HOUR)
    start_us = to_us(start)
    unit_ids = [f"{unit_prefix}{i:08d}" for i in range(n_units)]
    first_us = start_us + rng.integers(0, days * 24 * MICROS_PER_HOUR, size=n_units)
    platform = rng.choice(len(PLATFORMS), size=n_units, p=PLATFORM_P)
    country = rng.choice(len(COUNTRIES), size=n_units, p=COUNTRY_P)

    # ---- assignment through the real code path
    if via_service:
        chosen = []
        for i, uid in enumerate(unit_ids):
            when = start + timedelta(microseconds=int(first_us[i] - start_us))
            chosen.append(
                assign(
                    experiment,
                    uid,
                    {"platform": PLATFORMS[platform[i]], "country": COUNTRIES[country[i]]},
                    now=when,
                ).variant
            )
        arm_names = np.asarray(chosen)
    else:
        bulk = assign_many(experiment, unit_ids)
        arm_names = np.asarray(bulk.variants)
    arm = np.zeros(n_units, dtype=np.int64)
    for k, name in enumerate(names):
        arm[arm_names == name] = k

    conv_lift = np.array([arm_effects[n].conversion_lift for n in names])[arm]
    value_mult = np.array([1.0 + arm_effects[n].order_value_lift for n in names])[arm]
    ctr_arm = ctr * np.array([1.0 + arm_effects[n].ctr_lift for n in names])[arm]
    err_mult = np.array([1.0 + arm_effects[n].guardrail_effect for n in names])[arm]
    if np.any(ctr_arm > 1):
        raise ValueError("ctr × (1 + ctr_lift) must stay <= 1")

    # ---- unit-level latent traits shared by the pre-period and the experiment
    kappa = heterogeneity
    q = rng.beta(conversion_rate * kappa, (1 - conversion_rate) * kappa, size=n_units)
    v = rng.lognormal(-(unit_value_sigma**2) / 2, unit_value_sigma, size=n_units)
    g = rng.gamma(2.0, 0.5, size=n_units)

    u1 = rng.random(n_units)
    u2 = rng.random(n_units)
    base = u1 < q
    delta = np.where(conv_lift > 0, conversion_rate * conv_lift / (1 - conversion_rate), 0.0)
    if np.any(delta > 1):
        raise ValueError("conversion_rate × (1 + lift) must stay below 1")
    converted = np.where(conv_lift >= 0, base | (u2 < delta), base & (u2 < 1 + conv_lift))

    parts: list[tuple[np.ndarray, np.ndarray, str, np.ndarray | None]] = []

    def purchases(units: np.ndarray, t0: np.ndarray, span: float, mult: np.ndarray) -> None:
        """Orders of ``units``: the first at t0 + U(0, span), then 1 + Poisson(μ) in total."""
        n_orders = 1 + rng.poisson(extra_orders, size=units.size)
        first = t0 + (rng.random(units.size) * span).astype(np.int64)
        idx = np.repeat(np.arange(units.size), n_orders)
        is_first = np.ones(idx.size, dtype=bool)
        is_first[1:] = idx[1:] != idx[:-1]
        room = (t0 + int(span))[idx] - first[idx]
        ts = np.where(
            is_first, first[idx], first[idx] + (rng.random(idx.size) * room).astype(np.int64)
        )
        noise = rng.lognormal(-(order_value_sigma**2) / 2, order_value_sigma, size=idx.size)
        values = np.round(order_value * mult[idx] * v[units[idx]] * noise, 2)
        parts.append((units[idx], ts, "purchase", values))

    span = 0.9 * window_us
    buyers = np.flatnonzero(converted)
    purchases(buyers, first_us[buyers], span, value_mult[buyers])

    late = buyers[rng.random(buyers.size) < late_event_rate]
    late_ts = first_us[late] + window_us + (rng.random(late.size) * 3 * 86_400e6).astype(np.int64)
    parts.append((late, late_ts, "purchase", np.round(order_value * v[late], 2)))

    n_imp = rng.poisson(impressions, size=n_units)
    imp_units = np.repeat(np.arange(n_units), n_imp)
    imp_ts = first_us[imp_units] + (rng.random(imp_units.size) * span).astype(np.int64)
    parts.append((imp_units, imp_ts, "impression", None))
    clicked = rng.random(imp_units.size) < ctr_arm[imp_units]
    parts.append((imp_units[clicked], imp_ts[clicked] + 1_000_000, "click", None))

    n_err = rng.poisson(errors * g * err_mult)
    err_units = np.repeat(np.arange(n_units), n_err)
    err_ts = first_us[err_units] + (rng.random(err_units.size) * span).astype(np.int64)
    parts.append((err_units, err_ts, "error", None))

    if pre_period:
        pre_buyers = np.flatnonzero(rng.random(n_units) < q)
        purchases(pre_buyers, first_us[pre_buyers] - window_us, span, np.ones(pre_buyers.size))
        n_err_pre = rng.poisson(errors * g)
        pre_err_units = np.repeat(np.arange(n_units), n_err_pre)
        pre_err_ts = (
            first_us[pre_err_units] - 1 - (rng.random(pre_err_units.size) * span).astype(np.int64)
        )
        parts.append((pre_err_units, pre_err_ts, "error", None))

    if requests > 0:  # a generator of their own: the other draws stay as they were
        lat_rng = np.random.default_rng([seed, 0x1A7])
        slow = np.array([1.0 + arm_effects[n].latency_effect for n in names])[arm]
        speed = lat_rng.lognormal(0.0, LATENCY_UNIT_SD, size=n_units)
        n_req = 1 + lat_rng.poisson(requests, size=n_units)
        req_units = np.repeat(np.arange(n_units), n_req)
        req_ts = first_us[req_units] + (lat_rng.random(req_units.size) * span).astype(np.int64)
        noise = lat_rng.lognormal(0.0, LATENCY_REQUEST_SD, size=req_units.size)
        latency = np.round(latency_ms * slow[req_units] * speed[req_units] * noise, 1)
        parts.append((req_units, req_ts, "request", latency))

    ev_unit = np.concatenate([p[0] for p in parts])
    ev_ts = np.concatenate([p[1] for p in parts]).astype(np.int64)
    ev_type = np.concatenate([np.full(p[0].size, p[2], dtype=object) for p in parts])
    ev_value = np.concatenate(
        [p[3] if p[3] is not None else np.full(p[0].size, np.nan) for p in parts]
    )
    order = np.argsort(ev_ts, kind="stable")
    uid_arr = np.asarray(unit_ids, dtype=object)
    events = pd.DataFrame(
        {
            "unit_id": uid_arr[ev_unit[order]],
            "event_type": ev_type[order],
            "value": ev_value[order],
            "ts_us": ev_ts[order],
        }
    )
    events["timestamp"] = pd.to_datetime(events["ts_us"], unit="us", utc=True)

    # ---- exposures: first, repeats (same variant), contamination, planted SRM loss
    keep = np.ones(n_units, dtype=bool)
    if srm > 0:
        last = len(names) - 1
        keep &= ~((arm == last) & (rng.random(n_units) < srm))
    ex_unit = [np.flatnonzero(keep)]
    ex_ts = [first_us[keep]]
    ex_arm = [arm[keep]]
    n_rep = rng.poisson(repeat_exposures, size=n_units) * keep
    rep_units = np.repeat(np.arange(n_units), n_rep)
    ex_unit.append(rep_units)
    ex_ts.append(first_us[rep_units] + 1 + (rng.random(rep_units.size) * span).astype(np.int64))
    ex_arm.append(arm[rep_units])
    multi = np.flatnonzero(keep & (rng.random(n_units) < multiple_exposure_rate))
    if multi.size:
        other = (arm[multi] + rng.integers(1, len(names), size=multi.size)) % len(names)
        ex_unit.append(multi)
        ex_ts.append(first_us[multi] + 1 + (rng.random(multi.size) * 2 * 86_400e6).astype(np.int64))
        ex_arm.append(other)
    eu = np.concatenate(ex_unit)
    ets = np.concatenate(ex_ts).astype(np.int64)
    earm = np.concatenate(ex_arm)
    order = np.argsort(ets, kind="stable")
    eu, ets, earm = eu[order], ets[order], earm[order]
    exposures = pd.DataFrame(
        {
            "unit_id": uid_arr[eu],
            "experiment": key,
            "variant": np.asarray(names, dtype=object)[earm],
            "ts_us": ets,
            "platform": np.asarray(PLATFORMS, dtype=object)[platform[eu]],
            "country": np.asarray(COUNTRIES, dtype=object)[country[eu]],
        }
    )
    exposures["timestamp"] = pd.to_datetime(exposures["ts_us"], unit="us", utc=True)

    # ---- truth
    p_arm = {n: conversion_rate * (1 + arm_effects[n].conversion_lift) for n in names}
    m_arm = {n: order_value * (1 + arm_effects[n].order_value_lift) for n in names}
    truth = {
        "conversion_rate": dict(p_arm),
        "orders_per_user": {n: p_arm[n] * (1 + extra_orders) for n in names},
        "revenue_per_user": {n: p_arm[n] * (1 + extra_orders) * m_arm[n] for n in names},
        "average_order_value": dict(m_arm),
        "repeat_purchase_rate": {n: p_arm[n] * (1 - math.exp(-extra_orders)) for n in names},
        "click_through_rate": {n: ctr * (1 + arm_effects[n].ctr_lift) for n in names},
        "errors_per_user": {n: errors * (1 + arm_effects[n].guardrail_effect) for n in names},
        "time_to_convert": dict.fromkeys(names, 0.45 * window_us / MICROS_PER_HOUR),
    }
    if requests > 0:
        for p in (0.5, 0.95, 0.99):
            truth[f"p{p * 100:g}_latency"] = {
                n: true_latency_quantile(latency_ms * (1 + arm_effects[n].latency_effect), p)
                for n in names
            }
    planted = {
        "srm": srm,
        "multiple_exposure_units": int(multi.size),
        "late_purchases": int(late.size),
        "lost_exposure_units": int(n_units - keep.sum()),
        "guardrail_effect": {n: arm_effects[n].guardrail_effect for n in names[1:]},
    }
    return SimulatedExperiment(
        experiment=experiment,
        exposures=exposures,
        events=events,
        truth=truth,
        planted=planted,
        metrics=simulation_metrics(f"{window_days}d"),
        unit_prefix=unit_prefix,
    )


def load_simulation(
    sim: SimulatedExperiment,
    db: Any,
    *,
    via: str = "auto",
    chunk_size: int = 100_000,
) -> dict[str, int]:
    """Register the experiment and load its exposures and events into the store ``db``.

    ``via="ingest"`` goes through :func:`abkit.ingest.ingestor.ingest` (validation,
    deduplication, accounting: the production path); ``via="bulk"`` writes the rows
    straight through :meth:`abkit.store.store.Store.append_columns` (the store's dialect
    bulk path) for benchmark-sized data;
    ``"auto"`` uses ingest when it is installed. Exposure ``event_id`` follows Contract 1;
    event ids are ``<experiment>/<unit prefix>/<row>`` (unique across chunks simulated with
    different ``unit_prefix``). Returns the rows written per table.
    """
    from abkit.store.store import open_store

    store = open_store(db)
    store.register_experiments([sim.experiment])
    if via == "auto":
        try:
            import abkit.ingest.ingestor  # noqa: F401

            via = "ingest"
        except ModuleNotFoundError:
            via = "bulk"
    if via == "ingest":
        from abkit.ingest.ingestor import ingest

        ex_cols = ["unit_id", "experiment", "variant", "timestamp", "platform", "country"]
        ev_cols = ["unit_id", "event_type", "value", "timestamp"]
        r1 = ingest(sim.exposures[ex_cols], db=store, kind="exposures", source_name="simulation")
        r2 = ingest(sim.events[ev_cols], db=store, kind="events", source_name="simulation")
        return {"exposures": int(r1.accepted), "events": int(r2.accepted)}
    if via != "bulk":
        raise ValueError("via must be 'auto', 'ingest' or 'bulk'")
    return _bulk_load(store, sim, chunk_size)


def _bulk_load(store: Any, sim: SimulatedExperiment, chunk_size: int) -> dict[str, int]:
    """Append the simulated rows column-wise through the store's bulk path
    (:meth:`~abkit.store.store.Store.append_columns`: DuckDB reads a registered frame,
    the others executemany). The ids are fresh, so rows are appended, not deduplicated."""
    from abkit.assignment.hashing import event_id

    t = store.tables
    ex = sim.exposures
    ev = sim.events
    key = sim.experiment.key
    ids = [
        event_id(key, u, v, int(ts))
        for u, v, ts in zip(ex["unit_id"], ex["variant"], ex["ts_us"], strict=True)
    ]
    content = "0" * 32  # simulated rows: no source content to hash
    written = {"exposures": 0, "exposure_attributes": 0, "events": 0}
    for lo in range(0, len(ex), chunk_size):
        hi = min(lo + chunk_size, len(ex))
        n = hi - lo
        with store.write() as conn:
            written["exposures"] += store.append_columns(
                conn,
                t.exposures,
                {
                    "event_id": ids[lo:hi],
                    "experiment": [key] * n,
                    "unit_id": ex["unit_id"].iloc[lo:hi].tolist(),
                    "variant": ex["variant"].iloc[lo:hi].tolist(),
                    "ts_us": ex["ts_us"].iloc[lo:hi].astype("int64").tolist(),
                    "content_hash": [content] * n,
                    "batch_id": [0] * n,
                },
            )
            names = ("platform", "country")
            written["exposure_attributes"] += store.append_columns(
                conn,
                t.exposure_attributes,
                {
                    "event_id": ids[lo:hi] * len(names),
                    "name": [name for name in names for _ in range(n)],
                    "value": [str(v) for name in names for v in ex[name].iloc[lo:hi].tolist()],
                },
            )
    for lo in range(0, len(ev), chunk_size):
        hi = min(lo + chunk_size, len(ev))
        n = hi - lo
        values = ev["value"].iloc[lo:hi].tolist()
        with store.write() as conn:
            written["events"] += store.append_columns(
                conn,
                t.events,
                {
                    "event_id": [f"{key}/{sim.unit_prefix}/{i}" for i in range(lo, hi)],
                    "unit_id": ev["unit_id"].iloc[lo:hi].tolist(),
                    "event_type": ev["event_type"].iloc[lo:hi].tolist(),
                    "value": [None if v != v else v for v in values],  # NaN -> NULL
                    "ts_us": ev["ts_us"].iloc[lo:hi].astype("int64").tolist(),
                    "content_hash": [content] * n,
                    "batch_id": [0] * n,
                },
            )
    return written
