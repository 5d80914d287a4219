"""Names every statistics module shares: result statuses, the p-value floor, option checks."""

from __future__ import annotations

from typing import Final

from abkit.vocabulary import ALTERNATIVES

OK: Final = "ok"
NOT_ENOUGH_DATA: Final = "not enough data"

# Smallest positive double: a p-value that underflows even the survival function is
# reported as this (with a note), never as 0.
P_FLOOR = 5e-324


def check_alpha_alternative(alpha: float, alternative: str) -> None:
    """Raise ``ValueError`` unless ``0 < alpha < 0.5`` and ``alternative`` is known."""
    if not (isinstance(alpha, (int, float)) and 0.0 < alpha < 0.5):
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
