"""Numbers formatted for people: percentages, currency, thousands separators, p-values.

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


def fmt_compact(value: Any, digits: int = 1, *, signed: bool = False) -> str:
    """A large number shortened: ``1.2K``, ``3.4M``, ``5.6B``; small ones stay whole."""
    if is_missing(value):
        return MISSING
    x = float(value)
    for scale, unit in _COMPACT_UNITS:
        if abs(x) >= scale * 0.9995:
            return f"{_sign(x, signed)}{abs(x) / scale:,.{digits}f}{unit}"
    return fmt_number(x, 0, signed=signed)


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


def fmt_currency(
    value: Any,
    currency: str | None = "USD",
    digits: int = 0,
    *,
    signed: bool = False,
    compact: bool = False,
) -> str:
    """Money: ``fmt_currency(-1234.5) == "−$1,235"``; unknown codes go after the amount."""
    if is_missing(value):
        return MISSING
    x = float(value)
    body = fmt_compact(abs(x), 1) if compact else fmt_number(abs(x), digits)
    sign = _sign(_round_zero(x, digits), signed)
    code = (currency or "").upper()
    prefix = _CURRENCY_PREFIX.get(code)
    if prefix is not None:
        return f"{sign}{prefix}{body}"
    return f"{sign}{body} {code}".rstrip()


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


def fmt_metric_value(value: Any, metric_type: str | None, *, signed: bool = False) -> str:
    """A per-arm metric value: a proportion as a percentage, anything else to 3 digits."""
    if metric_type == "proportion":
        return fmt_pct(value, 2, signed=signed)
    return fmt_sig(value, 3, signed=signed)


def fmt_abs_lift(value: Any, metric_type: str | None) -> str:
    """An absolute difference: percentage points for proportions, 3 digits otherwise."""
    if metric_type == "proportion":
        return fmt_pp(value)
    return fmt_sig(value, 3, signed=True)


def fmt_days(value: Any) -> str:
    """A duration in days: ``"1 day"``, ``"14 days"``, ``"≈ 2.5 days"`` for fractions."""
    if is_missing(value):
        return MISSING
    d = float(value)
    if d == int(d):
        n = int(d)
        return f"{n:,} day" if n == 1 else f"{n:,} days"
    return f"≈ {d:,.1f} days"
