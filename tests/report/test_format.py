"""People-facing number formatting."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abkit.report import format as F


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (1234567, {}, "1,234,567"),
        (1234.5678, {"digits": 2}, "1,234.57"),
        (-1234.5, {}, "−1,234"),  # banker's rounding of .5 is Python's; sign is U+2212
        (0.4, {"signed": True}, "0"),  # rounds to zero: no sign
        (0.6, {"signed": True}, "+1"),
        (-0.0004, {"digits": 2}, "0.00"),  # rounds to zero: no sign
        (None, {}, "—"),
        (float("nan"), {}, "—"),
        (float("inf"), {}, "—"),
    ],
)
def test_fmt_number(value, kwargs, expected):
    assert F.fmt_number(value, **kwargs) == expected


def test_fmt_pct():
    assert F.fmt_pct(0.0534) == "5.3%"
    assert F.fmt_pct(0.0534, 2) == "5.34%"
    assert F.fmt_pct(0.0534, signed=True) == "+5.3%"
    assert F.fmt_pct(-0.0534, signed=True) == "−5.3%"
    assert F.fmt_pct(12.5, 0) == "1,250%"
    assert F.fmt_pct(-0.00001, 1, signed=True) == "0.0%"
    assert F.fmt_pct(None) == "—"


def test_fmt_pp_and_abs_lift():
    assert F.fmt_pp(0.0042) == "+0.42 pp"
    assert F.fmt_pp(-0.0042) == "−0.42 pp"
    assert F.fmt_abs_lift(0.0042, "proportion") == "+0.42 pp"
    assert F.fmt_abs_lift(1.2345, "mean") == "+1.23"
    assert F.fmt_abs_lift(-1234.5, "mean") == "−1,230"  # three significant digits
    assert F.fmt_abs_lift(0.728, "mean", unit="currency", currency="USD") == "+$0.728"
    assert F.fmt_abs_lift(0.0042, "mean", unit="percent") == "+0.42 pp"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.000836, "0.000836"),
        (0.013, "0.0130"),
        (0.277, "0.277"),
        (7.01, "7.01"),
        (1234.5, "1,230"),
        (9_999.6, "10.0K"),  # rounded first: never "10,000"
        (12_345, "12.3K"),
        (764_300, "764K"),
        (999_950, "1.00M"),  # never "1,000K"
        (1_400_000, "1.40M"),
        (-2.5e9, "−2.50B"),
        (4.2e12, "4.20T"),
        (0, "0"),
    ],
)
def test_fmt_amount_is_one_significant_digit_rule(value, expected):
    assert F.fmt_amount(value) == expected


def test_fmt_money_always_names_its_currency():
    assert F.fmt_money(1234.5, "USD") == "$1,230"
    assert F.fmt_money(-764_300, "EUR", signed=True) == "−€764K"
    assert F.fmt_money(0.728, "usd", signed=True) == "+$0.728"
    assert F.fmt_money(12_345, "CHF") == "12.3K CHF"
    assert F.fmt_money(7.01, "") == "¤7.01"  # the currency was never recorded
    assert F.fmt_money(9_130, "USD", sig=2) == "$9,100"
    assert F.fmt_money(0, "USD", signed=True) == "$0"
    assert F.fmt_money(None, "USD") == "—"


def test_fmt_about_and_duration_for_sentences():
    assert F.fmt_about(252_951) == "250,000"
    assert F.fmt_about(3_912) == "3,900"
    assert F.fmt_about(12) == "12"
    assert [F.fmt_duration(d) for d in (0.4, 3.5, 20, 75, 368.2, 900)] == [
        "1 day",
        "4 days",
        "3 weeks",
        "2 months",
        "12 months",
        "2 years",
    ]


def test_fmt_sig():
    assert F.fmt_sig(0.012345) == "0.0123"
    assert F.fmt_sig(12345.6) == "12,346"
    assert F.fmt_sig(1.0) == "1.00"
    assert F.fmt_sig(0) == "0"
    assert F.fmt_sig(-0.5, signed=True) == "−0.500"


def test_fmt_pvalue_and_prob():
    assert F.fmt_pvalue(0.0004) == "< 0.001"
    assert F.fmt_pvalue(0.0123) == "0.012"
    assert F.fmt_pvalue(0.5) == "0.50"
    assert F.fmt_pvalue(1.0) == "1.00"
    assert F.fmt_prob(0.9996) == "> 99.9%"
    assert F.fmt_prob(0.0001) == "< 0.1%"
    assert F.fmt_prob(0.973) == "97.3%"


def test_fmt_interval_and_days():
    assert F.fmt_interval(-0.01, 0.02, F.fmt_pct, digits=1, signed=True) == "[−1.0%, +2.0%]"
    assert F.fmt_interval(None, 0.02, F.fmt_pct) == "[—, 2.0%]"
    assert F.fmt_interval(None, None) == "—"
    assert F.fmt_days(1) == "1 day"
    assert F.fmt_days(14.0) == "14 days"
    assert F.fmt_days(2.5) == "≈ 2.5 days"


def test_fmt_metric_value():
    assert F.fmt_metric_value(0.1234, "proportion") == "12.34%"
    assert F.fmt_metric_value(52.456, "mean") == "52.5"
    assert F.fmt_metric_value(None, "mean") == "—"


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_never_prints_nan_or_inf(x):
    for text in (
        F.fmt_number(x, 2),
        F.fmt_pct(x),
        F.fmt_sig(x),
        F.fmt_money(x, "USD"),
        F.fmt_amount(x),
        F.fmt_about(x),
        F.fmt_duration(x),
    ):
        assert "nan" not in text.lower() and "inf" not in text.lower()


@given(st.floats(min_value=-1e15, max_value=1e15, allow_nan=False))
def test_fmt_number_round_trips(x):
    text = F.fmt_number(x, 2).replace(",", "").replace(F.MINUS, "-")
    assert math.isclose(float(text), round(x, 2), abs_tol=0.011)
