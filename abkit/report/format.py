"""Numbers formatted for people: percentages, currency, thousands separators, p-values.

**One rule for measured amounts** (means, lifts, money, projections, harm): three
significant digits (:func:`fmt_amount`), written out below 10,000 (``7.01``, ``0.000836``,
``1,230``) and shortened with K/M/B above (``12.3K``, ``764K``, ``1.40M``). Money always
carries its currency (:func:`fmt_money`): a symbol or ISO code, or ``¤`` (the generic
currency sign) when the currency was never recorded. Counts in sentences are rounded to
two significant digits (:func:`fmt_about`) and durations said in days, weeks, months or
years (:func:`fmt_duration`).

Every helper accepts ``None``, NaN and infinities and shows a missing value as an em dash,
so a report never prints ``nan`` or ``None``. Negative numbers use the typographic minus
sign (U+2212), which screen readers announce as "minus" and which lines up with "+".

The report and the tests share these helpers: the test that checks the report's numbers
against the analysis result formats the result's numbers with the same function and looks
for the text in the report.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "—"
MINUS = "−"

# Symbols placed before the amount; other ISO codes are written after it ("1,200 CHF").
_CURRENCY_PREFIX = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "¥",
    "CNY": "¥",
    "INR": "₹",
    "KRW": "₩",
    "BRL": "R$",
    "CAD": "CA$",
    "AUD": "A$",
}

_COMPACT_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def is_missing(value: Any) -> bool:
    """True for ``None``, NaN and infinities (values a report cannot print as numbers)."""
    if value is None:
        return True
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return True


def _sign(value: float, signed: bool) -> str:
    if value < 0:
        return MINUS
    if signed and value > 0:
        return "+"
    return ""


def _round_zero(value: float, digits: int) -> float:
    # A value that rounds to zero is shown without a sign ("0.0%", not "−0.0%").
    return 0.0 if round(value, digits) == 0 else value


def fmt_number(value: Any, digits: int = 0, *, signed: bool = False) -> str:
    """A number with thousands separators: ``fmt_number(1234567) == "1,234,567"``."""
    if is_missing(value):
        return MISSING
    x = _round_zero(float(value), digits)
    return f"{_sign(x, signed)}{abs(x):,.{digits}f}"


def fmt_int(value: Any) -> str:
    """A count: ``fmt_int(12000) == "12,000"``."""
    return fmt_number(value, 0)


def fmt_sig(value: Any, sig: int = 3, *, signed: bool = False) -> str:
    """A measurement to ``sig`` significant digits, with thousands separators.

    ``fmt_sig(0.012345) == "0.0123"``, ``fmt_sig(12345.6) == "12,346"``.
    """
    if is_missing(value):
        return MISSING
    x = float(value)
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    digits = max(0, sig - 1 - magnitude)
    return fmt_number(x, digits, signed=signed)


def fmt_pct(value: Any, digits: int = 1, *, signed: bool = False) -> str:
    """A fraction as a percentage: ``fmt_pct(0.0534) == "5.3%"``; ``signed`` adds "+"."""
    if is_missing(value):
        return MISSING
    return fmt_number(float(value) * 100.0, digits, signed=signed) + "%"


def fmt_pp(value: Any, digits: int = 2, *, signed: bool = True) -> str:
    """A difference of two proportions in percentage points: ``"+0.42 pp"``."""
    if is_missing(value):
        return MISSING
    return fmt_number(float(value) * 100.0, digits, signed=signed) + " pp"


def fmt_pvalue(value: Any) -> str:
    """A p-value: ``"< 0.001"`` below one in a thousand, else three decimals (two above 0.1)."""
    if is_missing(value):
        return MISSING
    p = float(value)
    if p < 0.001:
        return "< 0.001"
    if p < 0.1:
        return f"{p:.3f}"
    return f"{p:.2f}"


def fmt_prob(value: Any) -> str:
    """A probability shown as a percentage, never claiming certainty: ``"> 99.9%"``."""
    if is_missing(value):
        return MISSING
    p = float(value)
    if p > 0.999:
        return "> 99.9%"
    if p < 0.001:
        return "< 0.1%"
    return fmt_pct(p, 1)


def fmt_interval(low: Any, high: Any, formatter: Any = fmt_pct, **kwargs: Any) -> str:
    """An interval in brackets with the same formatter for both ends: ``"[+0.5%, +2.1%]"``."""
    if is_missing(low) and is_missing(high):
        return MISSING
    return f"[{formatter(low, **kwargs)}, {formatter(high, **kwargs)}]"


# Where a measured amount switches from written out to K/M/B (keeps 3 significant digits).
COMPACT_FROM = 10_000.0
# The sign for money whose currency was never recorded (Unicode's generic currency sign).
UNKNOWN_CURRENCY = "¤"


def _round_sig(x: float, sig: int) -> float:
    """``x`` rounded to ``sig`` significant digits (``x`` itself if that overflows)."""
    rounded = float(f"{x:.{sig}g}")
    return rounded if math.isfinite(rounded) else x


def fmt_amount(value: Any, *, signed: bool = False, sig: int = 3) -> str:
    """A measured amount to ``sig`` significant digits: ``0.000836``, ``7.01``, ``1,230``,
    ``12.3K``, ``1.40M`` (the module's one rule)."""
    if is_missing(value):
        return MISSING
    x = float(value)
    if x == 0:
        return "0"
    # Round first so 9,999.6 becomes 10.0K, not 10,000.
    rounded = _round_sig(x, sig)
    if abs(rounded) < COMPACT_FROM:
        return fmt_sig(rounded, sig, signed=signed)
    for scale, unit in _COMPACT_UNITS:
        if abs(rounded) >= scale:
            scaled = rounded / scale
            digits = max(0, sig - 1 - math.floor(math.log10(abs(scaled))))
            return f"{_sign(x, signed)}{abs(scaled):,.{digits}f}{unit}"
    return fmt_sig(rounded, sig, signed=signed)  # pragma: no cover - 1e3 is the smallest unit


def currency_symbol(currency: str | None) -> tuple[str, bool]:
    """``(symbol or code, goes before the amount)``; ``("¤", True)`` when unknown."""
    code = (currency or "").strip().upper()
    if not code:
        return UNKNOWN_CURRENCY, True
    prefix = _CURRENCY_PREFIX.get(code)
    return (prefix, True) if prefix is not None else (code, False)


def fmt_money(value: Any, currency: str | None, *, signed: bool = False, sig: int = 3) -> str:
    """Money by the one rule, always with its currency: ``+$0.728``, ``−€1.40M``,
    ``12.3K CHF``, ``¤7.01`` (currency not recorded); ``sig=2`` for a sentence."""
    if is_missing(value):
        return MISSING
    x = float(value)
    body = fmt_amount(abs(x), sig=sig)
    sign = _sign(x, signed) if body != "0" else ""
    symbol, before = currency_symbol(currency)
    return f"{sign}{symbol}{body}" if before else f"{sign}{body} {symbol}"


def fmt_metric_value(
    value: Any,
    metric_type: str | None,
    *,
    signed: bool = False,
    unit: str | None = None,
    currency: str | None = None,
) -> str:
    """A per-arm metric value: a proportion as a percentage, money with its currency,
    anything else by the one rule."""
    if metric_type == "proportion" or unit == "percent":
        return fmt_pct(value, 2, signed=signed)
    if unit == "currency":
        return fmt_money(value, currency, signed=signed)
    return fmt_amount(value, signed=signed)


def fmt_abs_lift(
    value: Any, metric_type: str | None, *, unit: str | None = None, currency: str | None = None
) -> str:
    """An absolute difference: percentage points for proportions, money with its
    currency, anything else by the one rule; always signed."""
    if metric_type == "proportion" or unit == "percent":
        return fmt_pp(value)
    return fmt_metric_value(value, metric_type, signed=True, unit=unit, currency=currency)


def fmt_about(value: Any, sig: int = 2) -> str:
    """A count for a sentence, rounded: ``fmt_about(252_951) == "250,000"``."""
    if is_missing(value):
        return MISSING
    x = float(value)
    if x == 0:
        return "0"
    return fmt_number(_round_sig(x, sig) if abs(x) >= 10**sig else x, 0)


def fmt_duration(days: Any) -> str:
    """A duration in words: ``"5 days"``, ``"3 weeks"``, ``"12 months"``, ``"2 years"``."""
    if is_missing(days):
        return MISSING
    d = max(float(days), 0.0)
    for limit, size, word in ((14, 1, "day"), (61, 7, "week"), (730, 30.4375, "month")):
        if d < limit:
            n = max(1, round(d / size))
            return f"{n} {word}" + ("" if n == 1 else "s")
    n = round(d / 365.25)
    return f"{n} years"


def fmt_days(value: Any) -> str:
    """A duration in days: ``"1 day"``, ``"14 days"``, ``"≈ 2.5 days"`` for fractions."""
    if is_missing(value):
        return MISSING
    d = float(value)
    if d == int(d):
        n = int(d)
        return f"{n:,} day" if n == 1 else f"{n:,} days"
    return f"≈ {d:,.1f} days"
