"""Metric definitions: builders, validation, the TOML loader's located errors, the library."""

from __future__ import annotations

from datetime import timedelta

import pytest

from abkit.errors import ConfigError
from abkit.metrics import (
    Measure,
    Metric,
    load_metrics,
    mean,
    parse_duration_us,
    proportion,
    ratio,
)
from abkit.metrics.library import BUILTIN_METRICS, builtin_metric, builtin_metrics
from abkit.timeutil import MICROS_PER_HOUR


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7d", 7 * 24 * MICROS_PER_HOUR),
        ("24h", 24 * MICROS_PER_HOUR),
        ("30min", 30 * 60_000_000),
        ("1.5h", 90 * 60_000_000),
        (48, 48 * MICROS_PER_HOUR),
        (timedelta(days=2, microseconds=3), 2 * 24 * MICROS_PER_HOUR + 3),
        (None, None),
        ("none", None),
    ],
)
def test_durations(value, expected):
    assert parse_duration_us(value) == expected


@pytest.mark.parametrize("value", ["7 parsecs", "-1d", 0, True, float("nan"), [1]])
def test_bad_durations_are_config_errors(value):
    with pytest.raises(ConfigError) as info:
        parse_duration_us(value, field_name="window")
    assert info.value.location.field == "window"


def test_builders_set_kind_and_measures():
    conv = proportion("conv", "purchase", window="7d", min_count=2)
    assert conv.type == "proportion" and conv.numerator == Measure(("purchase",), "count")
    assert conv.min_count == 2 and conv.window_us == 7 * 24 * MICROS_PER_HOUR
    rev = mean("rev", ["purchase", "renewal"], cap_percentile=99)
    assert rev.event_types == ("purchase", "renewal") and rev.window_us is None
    aov = ratio("aov", ("purchase", "sum"), ("purchase", "count"))
    assert aov.event_types == ("purchase",)
    ctr = ratio("ctr", ("click", "count"), ("impression", "count"))
    assert ctr.event_types == ("click", "impression")
    # CUPED pre-period has the window's length, 14 days without a window
    assert conv.pre_period_us == conv.window_us
    assert rev.pre_period_us == 14 * 24 * MICROS_PER_HOUR


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "", "type": "mean"}, "name"),
        ({"name": "m", "type": "median"}, "type"),
        ({"name": "m", "type": "mean", "direction": "up"}, "direction"),
        ({"name": "m", "type": "ratio"}, "denominator"),
        ({"name": "m", "type": "mean", "cap": 1.0, "cap_percentile": 99.0}, "cap"),
        ({"name": "m", "type": "mean", "cap_percentile": 100.0}, "cap_percentile"),
        ({"name": "m", "type": "proportion", "cap": 1.0}, "cap"),
        ({"name": "m", "type": "proportion", "min_count": 0}, "min_count"),
        ({"name": "m", "type": "mean", "mde": -0.1}, "mde"),
        ({"name": "m", "type": "mean", "role": "boss"}, "role"),
    ],
)
def test_invalid_metrics_name_the_field(kwargs, field):
    kwargs.setdefault("numerator", Measure(("purchase",), "sum"))
    with pytest.raises(ConfigError) as info:
        Metric(**kwargs)
    assert info.value.location.field == field


def test_unknown_aggregate_is_rejected():
    with pytest.raises(ConfigError, match="unknown aggregate"):
        Measure(("purchase",), "median")  # type: ignore[arg-type]


def test_library_covers_the_business_metrics():
    assert set(BUILTIN_METRICS) == {
        "conversion_rate",
        "revenue_per_user",
        "orders_per_user",
        "average_order_value",
        "repeat_purchase_rate",
        "click_through_rate",
        "time_to_convert",
    }
    ttc = builtin_metric("time_to_convert")
    assert ttc.type == "ratio" and ttc.direction == "lower"
    assert ttc.numerator.aggregate == "hours_to_first"
    assert ttc.denominator is not None and ttc.denominator.aggregate == "converted"
    assert builtin_metric("repeat_purchase_rate").min_count == 2
    assert builtin_metric("revenue_per_user").cap_percentile == 99.0
    assert [m.name for m in builtin_metrics("orders_per_user")] == ["orders_per_user"]
    with pytest.raises(KeyError, match="choose one of"):
        builtin_metric("nope")


GOOD = """
[[metric]]
name = "conversion"
type = "proportion"
event = "purchase"
window = "3d"
role = "primary"
mde = 0.02

[[metric]]
builtin = "revenue_per_user"
cap_percentile = 95

[[metric]]
name = "aov"
type = "ratio"
numerator = { event = "purchase", aggregate = "sum" }
denominator = { event = "purchase", aggregate = "count" }

[[metric]]
name = "errors"
type = "mean"
event = ["error", "crash"]
aggregate = "count"
direction = "lower"
role = "guardrail"
window_hours = 12
"""


def test_toml_loads_every_kind(tmp_path):
    path = tmp_path / "metrics.toml"
    path.write_text(GOOD)
    metrics = load_metrics(path)
    assert [m.name for m in metrics] == ["conversion", "revenue_per_user", "aov", "errors"]
    conv, rev, aov, err = metrics
    assert conv.role == "primary" and conv.mde == 0.02 and conv.window_us == 72 * MICROS_PER_HOUR
    assert rev.cap_percentile == 95 and rev.numerator.aggregate == "sum"
    assert aov.denominator == Measure(("purchase",), "count")
    assert err.event_types == ("error", "crash") and err.window_us == 12 * MICROS_PER_HOUR


@pytest.mark.parametrize(
    ("text", "row", "field", "message"),
    [
        (
            '[[metric]]\nname = "a"\ntype = "mean"\nevent = "x"\nwindoww = "7d"\n',
            1,
            "windoww",
            "unknown key",
        ),
        (
            '[[metric]]\nname = "a"\ntype = "mean"\nevent = "x"\n\n[[metric]]\nname = "b"\ntype = "mean"\n',
            6,
            "event",
            "needs an event",
        ),
        (
            '[[metric]]\nname = "a"\ntype = "mean"\nevent = "x"\ncap = "big"\n',
            1,
            "cap",
            "must be a number",
        ),
        (
            '[[metric]]\nname = "a"\ntype = "ratio"\nnumerator = { event = "x" }\n',
            1,
            "denominator",
            "needs a denominator",
        ),
        (
            '[[metric]]\nname = "a"\ntype = "ratio"\nnumerator = { event = "x", agg = "sum" }\ndenominator = { event = "y" }\n',
            1,
            "numerator.agg",
            "unknown key",
        ),
        (
            '[[metric]]\nname = "a"\ntype = "mean"\nevent = "x"\n[[metric]]\nname = "a"\ntype = "mean"\nevent = "y"\n',
            5,
            "name",
            "defined twice",
        ),
        ('[[metric]]\nbuiltin = "nope"\n', 1, "builtin", "no builtin metric"),
        (
            '[[metric]]\nbuiltin = "conversion_rate"\nevent = "signup"\n',
            1,
            "event",
            "cannot be overridden",
        ),
        (
            '[[metric]]\nname = "a"\ntype = "proportion"\nevent = "x"\nwindow = "soon"\n',
            1,
            "window",
            "cannot read duration",
        ),
        (
            '[[metric]]\nname = "a"\ntype = "mean"\nevent = "x"\nmin_count = 1.5\n',
            1,
            "min_count",
            "integer",
        ),
    ],
)
def test_toml_errors_are_located(text, row, field, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_metrics("m.toml", text=text)
    loc = info.value.location
    assert (loc.file, loc.row, loc.field) == ("m.toml", row, field)


def test_toml_syntax_error_names_the_line():
    with pytest.raises(ConfigError) as info:
        load_metrics("bad.toml", text='[[metric]]\nname = "a"\ntype = \n')
    assert info.value.location.file == "bad.toml" and info.value.location.row == 3


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_metrics(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"no \[\[metric\]\]"):
        load_metrics("x.toml", text="")
    with pytest.raises(ConfigError, match="top-level"):
        load_metrics("x.toml", text='primary = "a"\n')


def test_to_dict_roundtrips_through_toml_keys():
    m = builtin_metric("time_to_convert")
    d = m.to_dict()
    assert d["numerator"] == {"event": ["purchase"], "aggregate": "hours_to_first"}
    assert d["window_hours"] == 168 and d["direction"] == "lower"


def test_margin_is_read_and_checked():
    (m,) = load_metrics(
        "g.toml",
        text='[[metric]]\nname = "e"\ntype = "mean"\nevent = "error"\nrole = "guardrail"\n'
        "margin = 0.02\n",
    )
    assert m.margin == 0.02 and m.to_dict()["margin"] == 0.02
    with pytest.raises(ConfigError) as info:
        m.with_(margin=0.0)
    assert info.value.location.field == "margin"


# ------------------------------------------------------------ covariates (CUPAC)
def test_covariates_in_toml_python_and_round_trip():
    from abkit.metrics import Covariate, bind_covariates, load_metrics, metric_from_dict

    text = """\
[[metric]]
builtin = "revenue_per_user"
covariates = ["pre:orders_per_user", "prediction:revenue_model"]

[[metric]]
name = "converted"
type = "proportion"
event = "purchase"
covariates = ["pre:conversion_rate"]
"""
    revenue, converted = load_metrics("m.toml", text=text)
    assert [c.label for c in revenue.covariates] == [
        "pre:orders_per_user",
        "prediction:revenue_model",
    ]
    assert revenue.covariates[1] == Covariate("prediction", "revenue_model")
    assert revenue.covariates[1].bound and not revenue.covariates[0].bound
    described = revenue.to_dict()
    numerator = described.pop("numerator")
    table = {k: v for k, v in described.items() if v is not None}  # TOML has no null
    again = metric_from_dict({**table, "event": numerator["event"]})
    assert again.covariates == revenue.covariates
    bound = bind_covariates([revenue, converted])
    # a proportion reference is its 0/1 indicator over its own pre-period
    (conv,) = bound[1].covariates
    assert conv.min_count == 1 and conv.measure is not None
    assert conv.lookback_us == builtin_metric("conversion_rate").pre_period_us  # its own
    assert bind_covariates(bound) == bound  # idempotent


def test_covariate_errors_name_the_field_and_line():
    from abkit.metrics import load_metrics

    text = '[[metric]]\nname = "r"\ntype = "mean"\nevent = "purchase"\ncovariates = "pre:x"\n'
    with pytest.raises(ConfigError) as info:
        load_metrics("m.toml", text=text)
    assert info.value.location.field == "covariates" and info.value.location.row == 1
    ratio_text = text.replace(
        'type = "mean"\nevent = "purchase"', 'builtin = "average_order_value"'
    )
    ratio_text = ratio_text.replace('name = "r"\n', "").replace('"pre:x"', '["pre:x"]')
    with pytest.raises(ConfigError, match="proportion and mean"):
        load_metrics("m.toml", text=ratio_text)


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('type = "mean"\nevent = "purchase"\naggregate = "sum"\nmin_count = 2', "min_count"),
        (
            'type = "mean"\nevent = "purchase"\naggregate = "sum"\nquantile_of = "unit"',
            "quantile_of",
        ),
        (
            'type = "proportion"\nevent = "purchase"\nwindow = "7d"\nwindow_hours = 1',
            "window_hours",
        ),
        ('builtin = "revenue_per_user"\nmin_count = 5', "min_count"),
    ],
)
def test_options_that_would_change_nothing_are_refused(toml, field):
    # accepted silently, each of these left the metric as it was (or one window won)
    from abkit.metrics.files import load_metrics

    with pytest.raises(ConfigError) as info:
        load_metrics("metrics.toml", text=f'[[metric]]\nname = "m"\n{toml}\n')
    assert field in str(info.value)
