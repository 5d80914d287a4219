"""End-to-end: simulated experiments with known effects through the store and ``analyze``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from abkit.analysis.analyze import AnalysisResult, analyze
from abkit.errors import ConfigError, NotEnoughDataError
from abkit.simulate import TrueEffect, load_simulation, simulate_experiment
from abkit.testing.compare import assert_same_readout
from abkit.timeutil import MICROS_PER_HOUR

WINDOW_US = 7 * 24 * MICROS_PER_HOUR


def _load(tmp_path_factory, name, via="bulk", **kwargs):
    sim = simulate_experiment(**kwargs)
    url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'abkit.db'}"
    load_simulation(sim, url, via=via)
    return sim, url


@pytest.fixture(scope="module")
def effect(tmp_path_factory):
    """A real improvement (loaded through the store's bulk path; ingest is tested below)."""
    return _load(
        tmp_path_factory,
        "effect",
        n_units=25_000,
        impressions=2.0,
        effects=TrueEffect(conversion_lift=0.15, order_value_lift=0.05),
        multiple_exposure_rate=0.02,
        seed=7,
    )


def _planned_for(metrics, mde):
    """The simulation's metrics with the primary metric planned for a relative ``mde``."""
    return [m.with_(mde=mde) if m.role == "primary" else m for m in metrics]


@pytest.fixture(scope="module")
def effect_result(effect) -> AnalysisResult:
    sim, url = effect
    # the test was sized for the planted 15% lift: its planned horizon is reached
    metrics = _planned_for(sim.metrics, 0.15)
    return analyze(url, sim.experiment.key, metrics, alpha=0.01, segments=["platform"])


def test_intervals_cover_the_truth(effect, effect_result):
    sim, _ = effect
    assert len(effect_result.metrics) == len(sim.metrics)
    for r in effect_result.metrics:
        assert r.status == "ok", r.note
        true_lift = sim.true_lift(r.metric, r.variant)
        lo, hi = r.abs_ci
        assert lo <= true_lift <= hi, (r.metric, lo, true_lift, hi)
        # and the estimate is close: within 4 standard errors of the truth
        assert abs(r.abs_lift - true_lift) < 4 * r.se_abs, r.metric


def test_improvement_ships_with_positive_impact(effect_result):
    d = effect_result.decision
    assert d.verdict == "ship" and d.winner == "treatment" and d.trustworthy
    assert d.reasons[0].startswith("Ship treatment")
    impact = effect_result.impact
    assert impact is not None and impact.metric == "revenue_per_user"
    # true revenue lift per unit 7 × (1.15 × 1.05 - 1) = 1.4525; the interval is around it
    assert impact.interval[0] > 0 and impact.change > 0
    per_unit = impact.change / impact.eligible_units
    assert per_unit == pytest.approx(effect_result.metrics[1].abs_lift)
    # eligible units per year = observed units per day × 365.25 (full traffic)
    assert impact.eligible_units == pytest.approx(effect_result.experiment.units_per_day * 365.25)


def test_quality_counts_what_was_planted(effect, effect_result):
    sim, _ = effect
    q = effect_result.quality
    assert not q.srm_detected and q.srm.p_value > 0.001
    assert q.multiple_exposure.multiple == sim.planted["multiple_exposure_units"]
    assert sum(effect_result.experiment.units.values()) == 25_000 - q.multiple_exposure.multiple
    excluded = {e.metric: e for e in q.excluded_events}
    # late purchases of analysed units are excluded and counted (contaminated units dropped)
    assert 0.9 * sim.planted["late_purchases"] < excluded["conversion_rate"].after_window
    assert excluded["conversion_rate"].after_window <= sim.planted["late_purchases"]
    assert excluded["revenue_per_user"].before_exposure > 0  # the pre-period purchases
    assert all(not b.imbalanced for b in q.balance)


def test_sums_match_an_independent_pandas_computation(effect, effect_result):
    """Per-unit values recomputed from the simulated frames with pandas, to 1e-9."""
    sim, _ = effect
    ex, ev = sim.exposures, sim.events
    first = ex.groupby("unit_id").agg(
        first=("ts_us", "min"), vmin=("variant", "min"), vmax=("variant", "max")
    )
    first = first[first.vmin == first.vmax]
    buy = ev[ev.event_type == "purchase"].join(first, on="unit_id", how="inner")
    inside = buy[(buy.ts_us >= buy["first"]) & (buy.ts_us < buy["first"] + WINDOW_US)]
    pre = buy[(buy.ts_us < buy["first"]) & (buy.ts_us >= buy["first"] - WINDOW_US)]
    y = inside.groupby("unit_id").value.sum().reindex(first.index, fill_value=0.0)
    x = pre.groupby("unit_id").value.sum().reindex(first.index, fill_value=0.0)
    orders = inside.groupby("unit_id").size().reindex(first.index, fill_value=0)
    for variant in ("control", "treatment"):
        mask = (first.vmin == variant).to_numpy()
        rev = effect_result.arm_stats["revenue_per_user"][variant]
        yy, xx = y.to_numpy()[mask], x.to_numpy()[mask]
        assert rev.n == mask.sum()
        for got, want in (
            (rev.sum, yy.sum()),
            (rev.sum_sq, (yy * yy).sum()),
            (rev.cov_sum, xx.sum()),
            (rev.cross_sum, (xx * yy).sum()),
        ):
            assert got == pytest.approx(want, rel=1e-9)
        conv = effect_result.arm_stats["conversion_rate"][variant]
        assert conv.sum == (orders.to_numpy()[mask] > 0).sum()
        aov = effect_result.arm_stats["average_order_value"][variant]
        assert aov.den_sum == orders.to_numpy()[mask].sum()


def test_cuped_reduces_variance_with_pre_period_data(effect_result):
    rev = next(r for r in effect_result.metrics if r.metric == "revenue_per_user")
    conv = next(r for r in effect_result.metrics if r.metric == "conversion_rate")
    assert rev.cuped and rev.variance_reduction > 0.02
    assert conv.cuped and conv.variance_reduction > 0.02
    aov = next(r for r in effect_result.metrics if r.metric == "average_order_value")
    assert aov.cuped and aov.variance_reduction > 0.01  # delta-method CUPED on ratios


def test_segments_cover_each_platform_with_correction(effect_result):
    seg = [s for s in effect_result.segments if s.result.metric == "conversion_rate"]
    assert {s.value for s in seg} == {"ios", "android", "web"}
    assert all(s.result.correction == "Holm" or s.result.correction for s in seg)
    assert all(s.result.p_value_adjusted >= s.result.p_value for s in seg)
    total = sum(s.result.n_control + s.result.n_treatment for s in seg)
    assert total == sum(effect_result.experiment.units.values())


def test_result_views(effect_result):
    frame = effect_result.to_frame()
    assert len(frame) == 8 and {"role", "metric", "rel_lift", "p_value"} <= set(frame.columns)
    assert set(frame.role) == {"primary", "secondary", "guardrail"}
    data = effect_result.to_dict()
    json.dumps(data, allow_nan=False)  # JSON-safe
    assert data["decision"]["verdict"] == "ship"
    assert data["quality"]["srm"]["mismatch"] is False
    html = effect_result._repr_html_()
    assert "Decision: ship" in html and "conversion_rate" in html
    text = effect_result.summary()
    assert "DECISION: SHIP (treatment)" in text
    days = {d.date for d in effect_result.daily}
    assert len(days) == 14
    last = [d for d in effect_result.daily if d.date == max(days) and d.metric == "conversion_rate"]
    assert sum(d.n for d in last) == sum(effect_result.experiment.units.values())
    # identifying columns first, the rest in a second frame keyed by metric and variant
    assert list(frame.columns[:5]) == ["metric", "variant", "role", "type", "unit"]
    details = effect_result.details_frame()
    assert list(details.columns[:2]) == ["metric", "variant"] and "n_control" in details.columns
    assert not set(frame.columns[2:]) & set(details.columns)
    # the notebook view rounds figures; the data keep full precision
    assert "0.0996629270010565" not in html and len(str(frame.p_value.iloc[0])) > 6


def test_result_is_self_contained_for_a_report(effect, effect_result):
    sim, _ = effect
    info = effect_result.metric_info("revenue_per_user")
    assert (info.type, info.unit, info.role, info.direction) == (
        "mean",
        "currency",
        "secondary",
        "higher",
    )
    assert info.definition["numerator"] == {"event": ["purchase"], "aggregate": "sum"}
    assert effect_result.metric_info("conversion_rate").unit == "percent"
    facts = effect_result.experiment
    assert facts.payloads == {v.name: v.payload for v in sim.experiment.variants}
    assert facts.status == sim.experiment.status and facts.tags == ("simulation",)
    assert facts.source == "abkit store" and facts.since is None and facts.until is None
    plan = effect_result.plan
    assert plan is not None and plan.metric == "conversion_rate" and plan.mde == 0.15
    assert plan.n_total and plan.units_collected == sum(facts.units.values())
    decision = effect_result.decision
    assert decision.basis == "primary_better"
    assert decision.decided_by == ("conversion_rate", "treatment")
    assert {g.status for g in effect_result.guardrails} <= {"pass", "fail", "inconclusive"}


def test_as_of_readout_reads_the_data_before_until(effect):
    from datetime import timedelta

    from abkit.simulate import DEFAULT_START

    sim, url = effect
    until = DEFAULT_START + timedelta(days=5)
    early = analyze(url, sim.experiment.key, list(sim.metrics), until=until.isoformat())
    full = analyze(url, sim.experiment.key, list(sim.metrics))
    assert early.experiment.until == until.isoformat()
    assert early.experiment.last_exposure < until.isoformat() < full.experiment.last_exposure
    assert sum(early.experiment.units.values()) < sum(full.experiment.units.values())
    # the as-of readout equals an experiment that ended at that moment
    ended = sim.experiment.__class__.from_dict(
        {**sim.experiment.to_dict(), "end": until.isoformat()}
    )
    same = analyze(url, ended, list(sim.metrics))
    assert_same_readout(same.to_dict()["arm_stats"], early.to_dict()["arm_stats"], rel=1e-12)
    late = analyze(url, sim.experiment.key, list(sim.metrics), since="2026-01-10")
    assert late.experiment.first_exposure >= "2026-01-10"
    assert late.experiment.since == "2026-01-10T00:00:00+00:00"
    with pytest.raises(ConfigError, match="no time zone"):
        analyze(url, sim.experiment.key, until="2026-01-10T05:00:00")
    with pytest.raises(ConfigError, match="since must be before until"):
        analyze(url, sim.experiment.key, since="2026-01-10", until="2026-01-09")


def test_unknown_segment_lists_the_attributes(effect):
    sim, url = effect
    with pytest.raises(ConfigError, match=r"'plattform'.*country, platform") as info:
        analyze(url, sim.experiment.key, segments=["plattform"])
    assert info.value.location.field == "segments"


def test_planted_srm_is_caught_and_blocks_the_decision(tmp_path_factory):
    sim, url = _load(
        tmp_path_factory,
        "srm",
        n_units=12_000,
        impressions=1.0,
        srm=0.10,
        effects=TrueEffect(conversion_lift=0.15),
        seed=3,
    )
    result = analyze(url, sim.experiment.key, list(sim.metrics))
    assert result.quality.srm_detected and result.quality.srm.p_value < 1e-4
    assert result.decision.verdict == "keep running" and not result.decision.trustworthy
    assert "sample ratio mismatch" in result.decision.reasons[0]
    # the same experiment without the loss passes the check
    clean, clean_url = _load(tmp_path_factory, "nosrm", n_units=12_000, impressions=1.0, seed=3)
    assert not analyze(clean_url, clean.experiment.key, list(clean.metrics)).quality.srm_detected


def test_srm_uses_the_configured_unequal_weights(tmp_path_factory):
    """A healthy 20/80 split must pass SRM against its own weights (and fail 50/50)."""
    sim, url = _load(
        tmp_path_factory, "weights", n_units=4_000, impressions=1.0, weights=(0.2, 0.8), seed=13
    )
    metrics = [m for m in sim.metrics if m.name in ("conversion_rate", "errors_per_user")]
    result = analyze(url, sim.experiment.key, metrics)
    weights = dict(zip(sim.experiment.variant_names, sim.experiment.effective_weights, strict=True))
    assert result.experiment.weights == weights
    assert weights["control"] == pytest.approx(0.2, abs=1e-6)
    srm = result.quality.srm
    n = sum(result.experiment.units.values())
    assert srm.expected == pytest.approx((n * weights["control"], n * weights["treatment"]))
    assert not result.quality.srm_detected and srm.p_value > 0.001
    # the same counts against an equal split are a glaring mismatch
    from abkit.stats.srm import srm_test

    assert srm_test(result.experiment.units, {"control": 0.5, "treatment": 0.5}).mismatch


def test_planted_guardrail_breach_rolls_back(tmp_path_factory):
    sim, url = _load(
        tmp_path_factory,
        "guard",
        n_units=12_000,
        impressions=1.0,
        effects=TrueEffect(conversion_lift=0.25, guardrail_effect=0.30),
        seed=5,
    )
    result = analyze(url, sim.experiment.key, list(sim.metrics))
    breach = [g for g in result.guardrails if g.status == "fail"]
    assert [g.metric for g in breach] == ["errors_per_user"]
    assert result.decision.verdict == "roll back"
    assert any("errors_per_user" in r for r in result.decision.reasons)
    # the primary metric alone would have shipped
    primary = next(r for r in result.metrics if r.metric == "conversion_rate")
    assert primary.significant and primary.abs_lift > 0
    # a Bayesian readout has no p-value; the breach is explained by its credible interval
    bayes = analyze(url, sim.experiment.key, list(sim.metrics), method="bayesian")
    assert bayes.decision.verdict == "roll back"
    bayes_breach = [g for g in bayes.guardrails if g.status == "fail"]
    assert [g.metric for g in bayes_breach] == ["errors_per_user"]
    assert "interval" in bayes_breach[0].reason and "excludes 0" in bayes_breach[0].reason


def test_no_effect_keeps_running_then_concludes_no_effect(tmp_path_factory):
    sim, url = _load(tmp_path_factory, "null", n_units=6_000, seed=11)
    metrics = list(sim.metrics)
    result = analyze(url, sim.experiment.key, metrics, traffic_per_day=1000)
    d = result.decision
    assert d.verdict == "keep running" and d.sample_needed > 0
    assert d.days_needed == pytest.approx(math.ceil(d.sample_needed / 1000 * 10) / 10)
    plan = d.power_plan
    assert plan.n_total == d.sample_needed + sum(result.experiment.units.values())
    # asking only for a huge effect (60% relative) makes the same data conclusive
    metrics[0] = metrics[0].with_(mde=0.6)
    relaxed = analyze(url, sim.experiment.key, metrics)
    primary = next(r for r in relaxed.metrics if r.metric == "conversion_rate")
    assert not primary.significant
    assert relaxed.decision.verdict == "no detectable effect"
    assert relaxed.decision.sample_needed == 0
    assert relaxed.decision.power_plan.n_total <= sum(relaxed.experiment.units.values())


def test_three_arms_ship_the_better_one_with_holm(tmp_path_factory):
    sim, url = _load(
        tmp_path_factory,
        "arms",
        n_units=15_000,
        impressions=1.0,
        variants=("control", "blue", "green"),
        effects={"green": TrueEffect(conversion_lift=0.35)},
        seed=9,
    )
    # no guardrail here: this test is about arms and the correction, not guardrail policy
    metrics = _planned_for([m for m in sim.metrics if m.role != "guardrail"], 0.35)
    result = analyze(url, sim.experiment.key, metrics)
    primary = [r for r in result.metrics if r.metric == "conversion_rate"]
    assert [r.variant for r in primary] == ["blue", "green"]
    assert all(r.correction == "Holm" for r in primary)
    assert result.decision.verdict == "ship" and result.decision.winner == "green"
    assert result.quality.srm.variants == ("control", "blue", "green")


def test_default_metrics_guardrail_names_and_errors(effect):
    sim, url = effect
    result = analyze(url, sim.experiment.key, guardrails=["time_to_convert"])
    assert result.primary == "conversion_rate"
    assert [g.metric for g in result.guardrails] == ["time_to_convert"]
    assert result.roles["time_to_convert"] == "guardrail"
    with pytest.raises(NotEnoughDataError, match="no exposures"):
        analyze(url, "no-such-experiment")
    with pytest.raises(ConfigError, match="method"):
        analyze(url, sim.experiment.key, method="magic")
    with pytest.raises(ConfigError, match="guardrails"):
        analyze(url, sim.experiment.key, guardrails=["nope"])


def test_ingest_path_gives_the_same_statistics_as_bulk(tmp_path_factory):
    """The production path (``abkit.ingest``, exposure attributes as columns) and the bulk
    loader produce the same store contents as far as the analysis can tell."""
    kwargs = dict(n_units=3_000, seed=21, multiple_exposure_rate=0.02)
    sim, ingested = _load(tmp_path_factory, "ingested", via="ingest", **kwargs)
    _, bulk = _load(tmp_path_factory, "bulk", via="bulk", **kwargs)
    a = analyze(ingested, sim.experiment.key, list(sim.metrics), segments=["country"])
    b = analyze(bulk, sim.experiment.key, list(sim.metrics), segments=["country"])
    # to the last bits only: the DuckDB engine beside a SQLite store sums in parallel, in
    # an order that varies from run to run
    assert_same_readout(a.to_dict(), b.to_dict(), rel=1e-12, abs_=1e-12)
    assert {s.value for s in a.segments} == {"US", "DE", "FR", "BR", "IN"}
    assert a.quality.multiple_exposure == b.quality.multiple_exposure


def test_service_path_hook_records_feed_the_analysis(tmp_path):
    """``via_service=True``: every first exposure goes through ``assign`` and the exposure
    hook; the hook's records (Contract 1) ingest and analyse like the frame."""
    from abkit.assignment.exposure import add_exposure_hook, remove_exposure_hook
    from abkit.ingest.ingestor import ingest
    from abkit.store.store import open_store

    records = []
    hook = add_exposure_hook(records.append)
    try:
        sim = simulate_experiment(1_500, via_service=True, seed=8, repeat_exposures=0.0)
    finally:
        remove_exposure_hook(hook)
    assert len(records) == 1_500
    first = sim.exposures.set_index("unit_id")
    r = records[0]
    assert r.variant == first.loc[r.unit_id, "variant"]
    assert r.attributes["platform"] == first.loc[r.unit_id, "platform"]
    assert r.timestamp == first.loc[r.unit_id, "timestamp"].to_pydatetime()
    store = open_store(f"sqlite:///{tmp_path / 'hook.db'}")
    store.register_experiments([sim.experiment])
    ingest(records, db=store, kind="exposures")
    ingest(sim.events[["unit_id", "event_type", "value", "timestamp"]], db=store, kind="events")
    result = analyze(store, sim.experiment.key, list(sim.metrics), segments=["platform"])
    assert sum(result.experiment.units.values()) == 1_500
    assert {s.value for s in result.segments} == {"ios", "android", "web"}


def test_simulation_truth_and_service_path():
    sim = simulate_experiment(2_000, via_service=True, seed=1, pre_period=False)
    bulk = simulate_experiment(2_000, via_service=False, seed=1, pre_period=False)
    # the service path and assign_many agree unit by unit
    a = sim.exposures.drop_duplicates("unit_id").set_index("unit_id").variant.sort_index()
    b = bulk.exposures.drop_duplicates("unit_id").set_index("unit_id").variant.sort_index()
    assert (a == b).all()
    assert sim.truth["revenue_per_user"]["control"] == pytest.approx(0.1 * 1.4 * 50)
    assert sim.true_lift("conversion_rate", "treatment") == 0
    with pytest.raises(ValueError):
        simulate_experiment(10, srm=1.5)


def test_simulated_conversion_is_unbiased():
    """The simulator's truth is exact: 200k units land within 3 standard errors."""
    sim = simulate_experiment(
        200_000,
        effects=TrueEffect(conversion_lift=-0.2),
        seed=2,
        pre_period=False,
        impressions=0.0,
        errors=0.0,
        late_event_rate=0.0,
    )
    first = sim.exposures.drop_duplicates("unit_id")
    buyers = set(sim.events.unit_id[sim.events.event_type == "purchase"])
    for variant, p in (("control", 0.10), ("treatment", 0.08)):
        units = first.unit_id[first.variant == variant]
        rate = units.isin(buyers).mean()
        assert abs(rate - p) < 3 * np.sqrt(p * (1 - p) / len(units))


def test_guardrail_margins_use_noninferiority(effect, tmp_path_factory):
    sim, url = effect
    base = _planned_for([m for m in sim.metrics if m.role != "guardrail"], 0.15)
    errors = next(m for m in sim.metrics if m.name == "errors_per_user")
    # no true harm: a 10% margin is shown to hold, so the winner ships
    shipped = analyze(url, sim.experiment.key, [*base, errors.with_(margin=0.10)])
    (check,) = shipped.guardrails
    assert (check.status, check.test, check.margin) == ("pass", "non-inferiority", 0.10)
    assert shipped.decision.verdict == "ship"
    # a 0.5% margin cannot be shown with this sample: the win waits for more data
    waiting = analyze(url, sim.experiment.key, [*base, errors.with_(margin=0.005)])
    assert waiting.guardrails[0].status == "inconclusive"
    assert waiting.decision.verdict == "keep running"
    assert "not yet shown" in " ".join(waiting.decision.reasons)
    # a true 30% harm is beyond a 5% margin: breached, roll back
    harmed, harmed_url = _load(
        tmp_path_factory,
        "margin",
        n_units=12_000,
        impressions=1.0,
        effects=TrueEffect(conversion_lift=0.25, guardrail_effect=0.30),
        seed=5,
    )
    metrics = [m.with_(margin=0.05) if m.role == "guardrail" else m for m in harmed.metrics]
    result = analyze(harmed_url, harmed.experiment.key, metrics)
    assert result.guardrails[0].status == "fail"
    assert result.decision.verdict == "roll back"


def test_python_memory_does_not_hold_the_events(effect, effect_result):
    """Only per-arm-per-day sums come back: 25k units and ~86k events analyse in a few MB
    of Python memory (the events alone would take tens of MB as Python rows)."""
    import tracemalloc

    sim, url = effect
    assert len(sim.events) > 80_000
    tracemalloc.start()
    try:
        analyze(url, sim.experiment.key, list(sim.metrics))  # imports are warm (fixture ran)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # measured 1.2 MB; the events as Python tuples would take over 15 MB
    assert peak < 4_000_000, peak


def test_python_memory_does_not_grow_with_units(effect, tmp_path_factory):
    """Peak Python memory of the same analysis on 5k and on 25k units is the same size:
    what comes back scales with arms × days × metrics, not with units or events."""
    import tracemalloc

    small, small_url = _load(tmp_path_factory, "small", n_units=5_000, impressions=2.0, seed=8)
    big, big_url = effect
    peaks = []
    for sim, url in ((small, small_url), (big, big_url), (small, small_url)):
        tracemalloc.start()
        try:
            analyze(url, sim.experiment.key, list(sim.metrics))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    # 5x the units (and events) may not cost more than noise: +25% or +300 kB
    assert peaks[1] < 1.25 * peaks[2] + 300_000, peaks


def test_small_counts_use_the_exact_test(tmp_path):
    """0 conversions in control: the Wald test is anti-conservative; the exact test decides."""
    from abkit.metrics import proportion
    from abkit.stats.readout import compare
    from abkit.stats.sufficient import MeanStats

    from .conftest import HOUR, T0, store_for, write_rows

    store = store_for(f"sqlite:///{tmp_path / 'small.db'}")
    ex, ev = [], []
    for i in range(60):
        variant = "control" if i < 30 else "treatment"
        ex.append(
            {
                "event_id": f"x{i}",
                "experiment": "e",
                "unit_id": f"u{i}",
                "variant": variant,
                "ts_us": T0 + i,
            }
        )
        if i >= 55:  # 5 conversions in treatment, none in control
            ev.append(
                {
                    "event_id": f"p{i}",
                    "unit_id": f"u{i}",
                    "event_type": "purchase",
                    "value": 1.0,
                    "ts_us": T0 + i + HOUR,
                }
            )
    write_rows(store, ex, ev)
    result = analyze(store, "e", [proportion("conv", "purchase", role="primary")])
    (r,) = result.metrics
    assert r.method == "exact"
    control, treatment = MeanStats(30, 0.0, 0.0), MeanStats(30, 5.0, 5.0)
    exact = compare(control, treatment, metric_type="proportion", method="exact")
    wald = compare(control, treatment, metric_type="proportion")
    assert r.p_value == exact.p_value and wald.p_value < r.p_value  # Wald: anti-conservative


def test_quantile_latency_guardrail(tmp_path):
    """p95 latency of clustered requests: the readout equals abkit.stats.quantile on the
    same events, a slower treatment fails the guardrail, and the one-day series is the overall
    quantile."""
    from abkit.metrics import proportion, quantile
    from abkit.stats.quantile import compare_quantiles, quantile_stats_from_events

    from .conftest import HOUR, T0, store_for, write_rows

    rng = np.random.default_rng(21)
    ex, ev = [], []
    latencies = {"control": ([], []), "treatment": ([], [])}
    for i in range(600):
        variant = "control" if i % 2 else "treatment"
        unit = f"u{i}"
        ex.append(
            {
                "event_id": f"x{i}",
                "experiment": "lat",
                "unit_id": unit,
                "variant": variant,
                "ts_us": T0 + i * 1000,
            }
        )
        slow = 1.3 if variant == "treatment" else 1.0
        for j in range(int(rng.integers(1, 6))):
            value = round(float(rng.lognormal(4.0, 0.4)) * slow, 3)
            ev.append(
                {
                    "event_id": f"r{i}-{j}",
                    "unit_id": unit,
                    "event_type": "request",
                    "value": value,
                    "ts_us": T0 + i * 1000 + j + 1,
                }
            )
            latencies[variant][0].append(value)
            latencies[variant][1].append(unit)
        if rng.random() < 0.2:
            ev.append(
                {
                    "event_id": f"p{i}",
                    "unit_id": unit,
                    "event_type": "purchase",
                    "value": 10.0,
                    "ts_us": T0 + i * 1000 + HOUR,
                }
            )
    store = store_for(f"sqlite:///{tmp_path / 'lat.db'}")
    write_rows(store, ex, ev)
    p95 = quantile("p95_latency", "request", 0.95)
    result = analyze(store, "lat", [proportion("conv", "purchase", role="primary"), p95])
    readout = next(r for r in result.metrics if r.metric == "p95_latency")
    want = compare_quantiles(
        quantile_stats_from_events(*latencies["control"], 0.95),
        quantile_stats_from_events(*latencies["treatment"], 0.95),
    )
    assert readout.treatment_mean == want.treatment_quantile
    assert readout.p_value == pytest.approx(want.p_value, rel=1e-12)
    assert readout.rel_lift == pytest.approx(0.3, abs=0.1)
    (check,) = result.guardrails
    assert check.status == "fail" and result.decision.verdict == "roll back"
    assert result.decision.decided_by == ("p95_latency", "treatment")
    daily = [d for d in result.daily if d.metric == "p95_latency"]  # computed per cumulative day
    assert [(d.variant, d.value) for d in daily] == [
        ("control", want.control_quantile),
        ("treatment", want.treatment_quantile),
    ]  # one day of exposures: the one point is the overall quantile
    assert result.metric_info("p95_latency").definition["probability"] == 0.95


def test_confidence_sequence_is_planned_from_the_primary_metric(effect):
    sim, url = effect
    metrics = _planned_for(sim.metrics, 0.15)
    result = analyze(url, sim.experiment.key, metrics, method="confseq")
    primary = next(r for r in result.metrics if r.metric == "conversion_rate")
    assert primary.method == "confseq" and primary.status == "ok"
    fixed = next(r for r in _fixed(effect, metrics).metrics if r.metric == "conversion_rate")
    # always valid, hence wider than the fixed-horizon interval at the same data
    assert primary.abs_ci.upper - primary.abs_ci.lower > fixed.abs_ci.upper - fixed.abs_ci.lower


def _fixed(effect, metrics):
    sim, url = effect
    return analyze(url, sim.experiment.key, metrics)
