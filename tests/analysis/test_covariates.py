"""Regression adjustment with several covariates computed in the analysis SQL (CUPED + CUPAC).

A metric declares ``covariates=("pre:orders_per_user", "prediction:revenue_model")``: with
its own pre-period value that is three covariates per unit, whose sums and cross-products the
database returns (never the units). Checked on SQLite, PostgreSQL and DuckDB against the
per-unit values worked out in Python from the rows written, and ``analyze()`` against an OLS
fit (statsmodels) of ``y ~ 1 + treatment + covariates`` on those values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm

from abkit.analysis.analyze import analyze, resolve_metrics
from abkit.analysis.decision import power_needed
from abkit.errors import ConfigError
from abkit.metrics import bind_covariates, mean, proportion, ratio
from abkit.stats.regression import CovariateMeanStats
from abkit.stats.sufficient import MeanStats

from .conftest import DAY, HOUR, T0, fetch, store_for, write_rows

COVARIATES = ("pre:orders_per_user", "prediction:revenue_model")
REVENUE = mean("revenue", "purchase", window="7d", role="primary", covariates=COVARIATES)
CONVERTED = proportion("converted", "purchase", window="7d", covariates=COVARIATES)
N_UNITS = 600
EFFECT = 1.5  # extra revenue per treated unit


def _simulate(seed: int = 5) -> tuple[list[dict], list[dict], dict[str, dict[str, np.ndarray]]]:
    """Rows to write and, per arm, the per-unit values the analysis must compute:
    ``y`` (7-day revenue), ``x`` (7-day pre-period revenue), ``orders`` (pre-period purchase
    count), ``pred`` (mean prediction before exposure, 0 without one), ``conv`` (bought)."""
    rng = np.random.default_rng(seed)
    exposures: list[dict] = []
    events: list[dict] = []
    values: dict[str, dict[str, list[float]]] = {
        v: {k: [] for k in ("y", "x", "orders", "pred", "conv")} for v in ("control", "treatment")
    }
    for i in range(N_UNITS):
        unit = f"u{i}"
        variant = "control" if i % 2 == 0 else "treatment"
        first = T0 + (i % 40) * HOUR + 17 * i  # two days of first exposures
        exposures.append(
            {
                "event_id": f"x{i}",
                "experiment": "exp",
                "unit_id": unit,
                "variant": variant,
                "ts_us": first,
            }
        )
        taste = rng.gamma(2.0, 1.0)  # the unit's propensity to buy (what a model learns)
        pre_values = np.round(rng.gamma(2.0, 4.0, rng.poisson(taste)), 2)
        for j, value in enumerate(pre_values):
            offset = int(rng.integers(HOUR, 6 * DAY))
            events.append(_event(f"{unit}-p{j}", unit, "purchase", float(value), first - offset))
        events.append(_event(f"{unit}-old", unit, "purchase", 500.0, first - 8 * DAY))  # too old
        predictions: list[float] = []
        if i % 10 != 3:  # some units have no prediction: 0
            for j in range(1 + (i % 7 == 0)):  # a few units were scored twice: the mean
                pred = float(np.round(3.0 * taste + rng.normal(0.0, 1.0), 3))
                predictions.append(pred)
                events.append(
                    _event(f"{unit}-m{j}", unit, "revenue_model", pred, first - (j + 1) * DAY)
                )
        # a score written after exposure could reflect the treatment: it is ignored
        events.append(_event(f"{unit}-late", unit, "revenue_model", 1000.0, first + HOUR))
        lam = taste * (1.1 if variant == "treatment" else 1.0)
        window_values = np.round(rng.gamma(2.0, 4.0, rng.poisson(lam)), 2)
        if variant == "treatment" and window_values.size:
            window_values[0] += EFFECT
        for j, value in enumerate(window_values):
            offset = int(rng.integers(1, 6 * DAY))
            events.append(_event(f"{unit}-w{j}", unit, "purchase", float(value), first + offset))
        v = values[variant]
        v["y"].append(float(window_values.sum()))
        v["x"].append(float(pre_values.sum()))
        v["orders"].append(float(pre_values.size))
        v["pred"].append(float(np.mean(predictions)) if predictions else 0.0)
        v["conv"].append(1.0 if window_values.size else 0.0)
    arrays = {v: {k: np.asarray(col) for k, col in d.items()} for v, d in values.items()}
    return exposures, events, arrays


def _event(event_id: str, unit: str, kind: str, value: float, ts: int) -> dict:
    return {"event_id": event_id, "unit_id": unit, "event_type": kind, "value": value, "ts_us": ts}


EXPOSURES, EVENTS, VALUES = _simulate()


@pytest.fixture
def loaded(any_url):
    store = store_for(any_url)
    write_rows(store, EXPOSURES, EVENTS)
    return any_url, store


def _covariates(arm: dict[str, np.ndarray], own: str) -> np.ndarray:
    """Per unit: the metric's own pre-period value, then the declared covariates."""
    return np.column_stack([arm[own], arm["orders"], arm["pred"]])


def _own_pre(arm: dict[str, np.ndarray]) -> np.ndarray:
    # the proportion's own pre-period value: bought in the pre-period
    return (arm["orders"] > 0).astype(float)


def test_the_database_returns_the_cross_products(loaded):
    _, store = loaded
    metrics = bind_covariates([REVENUE, CONVERTED])
    agg = fetch(store, "exp", metrics)[None]
    for variant, arm in VALUES.items():
        want_rev = CovariateMeanStats.from_values(arm["y"], arm["x"], _covariates(arm, "x")[:, 1:])
        got_rev = agg.metrics["revenue"][variant].stats
        cover = np.column_stack([arm["orders"], arm["pred"]])
        want_conv = CovariateMeanStats.from_values(arm["conv"], _own_pre(arm), cover)
        got_conv = agg.metrics["converted"][variant].stats
        for got, want in ((got_rev, want_rev), (got_conv, want_conv)):
            assert isinstance(got, CovariateMeanStats) and got.regression is not None
            assert got.n == want.n
            assert want.regression is not None
            for name in ("cov_sums", "cov_cross", "cov_y"):
                assert np.allclose(
                    getattr(got.regression, name), getattr(want.regression, name), rtol=1e-12
                ), (variant, name)
            fields = ("sum", "sum_sq", "cov_sum", "cov_sum_sq", "cross_sum")
            assert np.allclose(
                [getattr(got, f) for f in fields], [getattr(want, f) for f in fields], rtol=1e-12
            ), variant
    # the daily series adds the days up to the same statistics
    last = {p.variant: p.stats for p in agg.daily if p.metric == "revenue"}
    for variant in VALUES:
        total = agg.metrics["revenue"][variant].stats
        assert np.allclose(last[variant].regression.cov_cross, total.regression.cov_cross)


def _ols(arms: dict[str, dict[str, np.ndarray]], y: str, own: str):
    yc, yt = arms["control"][y], arms["treatment"][y]
    xs = []
    for arm in arms.values():
        base = arm[own] if own != "bought" else _own_pre(arm)
        xs.append(np.column_stack([base, arm["orders"], arm["pred"]]))
    x = np.vstack(xs)
    t = np.r_[np.zeros(yc.size), np.ones(yt.size)]
    design = sm.add_constant(np.column_stack([t, x - x.mean(axis=0)]))
    return sm.OLS(np.r_[yc, yt], design).fit(), t


def test_analyze_equals_ols_with_the_treatment_indicator(loaded):
    url, _ = loaded
    result = analyze(url, "exp", [REVENUE, CONVERTED])
    for name, y, own in (("revenue", "y", "x"), ("converted", "conv", "bought")):
        readout = next(r for r in result.metrics if r.metric == name)
        assert readout.status == "ok" and readout.cuped, readout.note
        assert "regression adjustment on 3 covariates" in readout.note
        fit, t = _ols(VALUES, y, own)
        # the adjusted difference is the OLS treatment coefficient
        assert readout.abs_lift == pytest.approx(fit.params[1], rel=1e-9, abs=1e-12)
        # its variance is the per-arm variance of the OLS residuals over the arm's units
        # (the Welch form regression.py documents; the classical OLS one pools the arms)
        resid = fit.resid
        var = sum(np.var(resid[t == g], ddof=1) / np.sum(t == g) for g in (0, 1))
        assert readout.se_abs**2 == pytest.approx(var, rel=1e-9)
        # the classical OLS standard error is close with equal arms (not equal)
        assert readout.se_abs == pytest.approx(fit.bse[1], rel=0.05)
        # variance reduction: 1 - adjusted/raw variance of the difference
        raw = sum(np.var(VALUES[v][y], ddof=1) / VALUES[v][y].size for v in VALUES)
        assert readout.variance_reduction == pytest.approx(1 - var / raw, rel=1e-9)
        # and beyond the single-covariate CUPED of the same data
        single = analyze(url, "exp", [REVENUE.with_(covariates=())])
        if name == "revenue":
            one = next(r for r in single.metrics if r.metric == "revenue")
            assert readout.variance_reduction > one.variance_reduction + 0.05


def test_sample_plan_uses_the_adjusted_variance(loaded):
    url, _ = loaded
    result = analyze(url, "exp", [REVENUE])
    plan = result.plan
    assert plan.r_squared is not None and 0.2 < plan.r_squared < 0.9
    assert plan.n_total_without_cuped is not None and plan.n_total is not None
    # at a fixed MDE the sample shrinks by the factor 1 - R² (up to rounding per arm)
    shrink = plan.n_total / plan.n_total_without_cuped
    assert shrink == pytest.approx(1 - plan.r_squared, abs=2e-3)
    if result.decision.verdict == "keep running":
        assert result.decision.sample_needed == plan.sample_needed
        assert plan.sample_needed == max(plan.n_total - plan.units_collected, 0)
        assert plan.sample_needed_without_cuped > plan.sample_needed
    off = analyze(url, "exp", [REVENUE], cuped=False).plan
    assert off.r_squared is None and off.n_total == plan.n_total_without_cuped


# ----------------------------------------------------------------------- definitions
def test_declaring_covariates():
    metric = mean("rev", "purchase", covariates=["pre:orders_per_user", "pre:rev"])
    assert [c.label for c in metric.covariates] == ["pre:orders_per_user"]  # own pre implicit
    (bound,) = bind_covariates([metric])[0].covariates
    assert bound.bound and bound.measure.aggregate == "count"
    with pytest.raises(ConfigError, match="proportion and mean"):
        ratio("aov", ("purchase", "sum"), ("purchase", "count")).with_(
            covariates=("pre:orders_per_user",)
        )
    with pytest.raises(ConfigError, match="names no analysed"):
        bind_covariates([mean("rev", "purchase", covariates=["pre:nope"])])
    with pytest.raises(ConfigError, match="proportion or mean"):
        bind_covariates([mean("rev", "purchase", covariates=["pre:average_order_value"])])
    with pytest.raises(ConfigError, match="pre:<metric>"):
        mean("rev", "purchase", covariates=["orders"])
    with pytest.raises(ConfigError, match="covariate source"):
        mean("rev", "purchase", covariates=["post:orders"])
    # analyze resolves them against the analysed metrics first
    other = mean("orders", "purchase", aggregate="count", window="3d")
    metrics, _, _ = resolve_metrics([metric.with_(covariates=["pre:orders"]), other], None)
    assert metrics[0].covariates[0].lookback_us == other.pre_period_us


# ------------------------------------------------------------------------ planning
def test_sample_needed_shrinks_by_one_minus_rho_squared():
    rng = np.random.default_rng(11)
    n, rho = 20_000, 0.8
    x = rng.normal(10.0, 2.0, n)
    y = 10.0 + rho * (x - 10.0) + math.sqrt(1 - rho**2) * rng.normal(0.0, 2.0, n)
    control = MeanStats.from_values(y, x)
    metric = mean("m", "e", mde=0.01)
    common = dict(current_units=0, weights=[0.5, 0.5], alpha=0.05, traffic_per_day=None)
    without, _, _, _ = power_needed(metric, control, cuped=False, **common)
    with_cuped, _, plan, target = power_needed(metric, control, cuped=True, **common)
    assert without and with_cuped and plan is not None
    r2 = np.corrcoef(x, y)[0, 1] ** 2
    assert with_cuped / without == pytest.approx(1 - r2, abs=1e-3)
    assert with_cuped / without == pytest.approx(1 - rho**2, abs=0.02)
    assert "R² = 0.6" in target


# ------------------------------------------------------------- CLI, TOML and the spec
METRICS_TOML = """\
[[metric]]
name = "revenue"
type = "mean"
event = "purchase"
window = "7d"
role = "primary"
covariates = ["pre:orders_per_user", "prediction:revenue_model"]
"""


def test_cli_reads_covariates_from_the_metrics_file(sqlite_url, tmp_path, capsys):
    import json

    from abkit.cli.main import main

    store = store_for(sqlite_url)
    write_rows(store, EXPOSURES, EVENTS)
    path = tmp_path / "metrics.toml"
    path.write_text(METRICS_TOML)
    args = ["analyze", "--db", sqlite_url, "--experiment", "exp", "--metrics", str(path)]
    assert main([*args, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (row,) = data["metrics"]
    assert "regression adjustment on 3 covariates" in row["note"]
    fit, _ = _ols(VALUES, "y", "x")
    assert row["abs_lift"] == pytest.approx(fit.params[1], rel=1e-9)
    assert data["plan"]["n_total_without_cuped"] > data["plan"]["n_total"]
    assert data["metric_defs"][0]["definition"]["covariates"] == list(COVARIATES)


def test_spec_metric_reference_declares_covariates():
    from abkit.lifecycle.spec import specs_from_text

    text = (
        '[[experiments]]\nkey = "exp"\nvariants = ["control", "treatment"]\n'
        'metrics = { primary = { metric = "revenue_per_user", covariates = '
        '["pre:orders_per_user", "prediction:revenue_model"] } }\n'
    )
    primary = specs_from_text(text)["exp"].metrics.primary
    assert [c.label for c in primary.covariates] == list(COVARIATES)
    bad = text.replace('"pre:orders_per_user"', '"orders"')
    with pytest.raises(ConfigError, match=r"metrics\.primary\.covariates"):
        specs_from_text(bad)


def test_report_states_the_variance_reduction_and_both_plans(loaded):
    from abkit.report import sections as S
    from abkit.report.adapt import from_analysis

    url, _ = loaded
    result = analyze(url, "exp", [REVENUE])
    model = from_analysis(result)
    q = model.quality
    assert q.r_squared == result.plan.r_squared
    assert q.sample_needed_without_cuped == result.plan.n_total_without_cuped
    quality = S.data_quality(model).html
    assert "without it the plan would need" in quality
    assert f"{result.plan.n_total_without_cuped:,}" in quality
    card = S.scorecard.scorecard(model).html
    reduction = result.metrics[0].variance_reduction
    assert f"reduced the variance by: revenue {reduction:.0%}" in card
