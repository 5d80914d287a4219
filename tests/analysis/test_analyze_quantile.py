"""Quantile metrics through analyze(), the CLI and the report: per-unit values, segments,
the daily series and the latency guardrail, on a simulated experiment with known truth."""

from __future__ import annotations

import json

import pytest

from abkit.analysis.analyze import analyze
from abkit.metrics import proportion, quantile
from abkit.simulate import TrueEffect, load_simulation, simulate_experiment

P95 = quantile("p95_latency", "request", 0.95, window="7d", unit="duration")
P90_REVENUE = quantile(
    "p90_revenue", "purchase", 0.9, of="unit", window="7d", direction="higher",
    role="secondary", unit="currency",
)  # fmt: skip
CONVERSION = proportion("conversion_rate", "purchase", window="7d", role="primary")

METRICS_TOML = """\
[[metric]]
name = "conversion_rate"
type = "proportion"
event = "purchase"
window = "7d"
role = "primary"

[[metric]]
name = "p95_latency"
type = "quantile"
event = "request"
probability = 0.95
window = "7d"
direction = "lower"
role = "guardrail"
unit = "duration"

[[metric]]
name = "p90_revenue"
type = "quantile"
quantile_of = "unit"
event = "purchase"
aggregate = "sum"
probability = 0.9
window = "7d"
unit = "currency"
"""


@pytest.fixture(scope="module")
def slower(tmp_path_factory):
    """4,000 users over 6 days; the treatment converts 10% more, buyers spend 10% more and
    every request is 25% slower."""
    sim = simulate_experiment(
        4_000,
        key="slow-model",
        effects=TrueEffect(conversion_lift=0.1, order_value_lift=0.1, latency_effect=0.25),
        conversion_rate=0.3,
        impressions=0.0,
        requests=2.0,
        days=6,
        seed=3,
    )
    url = f"sqlite:///{tmp_path_factory.mktemp('q') / 'q.db'}"
    load_simulation(sim, url)
    return sim, url


def test_latency_guardrail_per_unit_quantile_segments_and_daily(slower):
    from abkit.stats.quantile import QuantileStats

    sim, url = slower
    result = analyze(url, "slow-model", [CONVERSION, P95, P90_REVENUE], segments=["platform"])
    p95 = next(r for r in result.metrics if r.metric == "p95_latency")
    truth = sim.truth["p95_latency"]
    assert p95.status == "ok" and p95.metric_type == "quantile"
    assert p95.abs_ci.lower < truth["treatment"] - truth["control"] < p95.abs_ci.upper
    assert p95.rel_lift == pytest.approx(0.25, abs=0.06) and p95.significant
    (check,) = result.guardrails
    assert check.metric == "p95_latency" and check.status == "fail"
    assert "clustered by unit" in p95.note
    rev = next(r for r in result.metrics if r.metric == "p90_revenue")
    assert rev.status == "ok" and "per-unit" in rev.note
    stats = result.arm_stats["p90_revenue"]["control"]
    assert isinstance(stats, QuantileStats) and stats.n == stats.events  # one value per unit
    assert stats.n == result.experiment.units["control"]  # units without a purchase count
    # every platform gets its own quantile readout of the guardrail
    seg = [s for s in result.segments if s.result.metric == "p95_latency"]
    assert {s.value for s in seg} == {"ios", "android", "web"}
    assert all(s.result.status == "ok" and s.result.rel_lift > 0.1 for s in seg)
    # the daily series: one cumulative point per day of first exposure, the last = overall
    daily = [d for d in result.daily if d.metric == "p95_latency"]
    assert len({d.date for d in daily}) == 6
    last = [d for d in daily if d.date == max(x.date for x in daily)]
    assert {d.variant: d.value for d in last} == {
        "control": p95.control_mean,
        "treatment": p95.treatment_mean,
    }
    assert [d.n for d in daily if d.variant == "control"] == sorted(
        d.n for d in daily if d.variant == "control"
    )
    treated = next(d for d in last if d.variant == "treatment")
    assert treated.rel_lift == pytest.approx(p95.rel_lift, rel=1e-12)


def test_cli_and_report_show_quantile_rows(slower, tmp_path, capsys):
    from abkit.cli.main import main

    _, url = slower
    metrics = tmp_path / "m.toml"
    metrics.write_text(METRICS_TOML, encoding="utf-8")
    args = ["--db", url, "--experiment", "slow-model", "--metrics", str(metrics)]
    assert main(["analyze", *args, "--segment", "platform", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["metric"]: r for r in out["metrics"]}
    assert rows["p95_latency"]["metric_type"] == "quantile"
    assert rows["p95_latency"]["status"] == rows["p90_revenue"]["status"] == "ok"
    assert {s["value"] for s in out["segments"] if s["metric"] == "p95_latency"} == {
        "ios",
        "android",
        "web",
    }
    assert main(["analyze", *args]) == 0
    text = capsys.readouterr().out
    assert "p95_latency" in text and "p90_revenue" in text
    report = tmp_path / "r.html"
    assert main(["report", *args, "--out", str(report)]) == 0
    page = report.read_text(encoding="utf-8")
    assert "p95_latency" in page or "p95 latency" in page
