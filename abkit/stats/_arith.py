"""Elementwise helpers that take Python floats or numpy arrays alike.

The statistics formulas are written once and evaluated both on one comparison (the scalar
readout, where numpy's per-call overhead would dominate) and on arrays of comparisons
(:mod:`abkit.stats.vectorised`). These helpers use :mod:`math` for floats and numpy for
arrays, so a formula built from them and ``+ - * /`` serves both. Array callers set
``numpy.errstate`` themselves (a division by zero in a masked cell is expected there).
"""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "Real",
    "absolute",
    "clip",
    "copysign",
    "maximum",
    "minimum",
    "positive_finite",
    "sqrt",
    "where",
]

Real: TypeAlias = float | npt.NDArray[np.float64]
"""A float, or an array of them: what these helpers and the formulas built on them take."""

Condition: TypeAlias = bool | np.bool_ | npt.NDArray[np.bool_]


def maximum(a: Real, b: Real) -> Real:
    """Elementwise larger of ``a`` and ``b``."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.maximum(a, b)
    return a if a >= b else b


def minimum(a: Real, b: Real) -> Real:
    """Elementwise smaller of ``a`` and ``b``."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.minimum(a, b)
    return a if a <= b else b


def absolute(x: Real) -> Real:
    """Elementwise ``|x|``."""
    return np.abs(x) if isinstance(x, np.ndarray) else abs(x)


def positive_finite(x: Real) -> Condition:
    """Elementwise ``0 < x < ∞`` (False for NaN)."""
    if isinstance(x, np.ndarray):
        return np.isfinite(x) & (x > 0)
    return 0 < x < math.inf


def clip(x: Real, lower: float, upper: float) -> Real:
    """``x`` limited to ``[lower, upper]``."""
    return minimum(maximum(x, lower), upper)


def sqrt(x: Real) -> Real:
    """Square root (of a non-negative value)."""
    return np.sqrt(x) if isinstance(x, np.ndarray) else math.sqrt(x)


def copysign(x: Real, y: Real) -> Real:
    """``|x|`` with the sign of ``y``."""
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return np.copysign(x, y)
    return math.copysign(x, y)


def where(condition: Condition, x: Real, y: Real) -> Real:
    """``x`` where ``condition`` holds, else ``y``."""
    if isinstance(condition, np.ndarray):
        return np.where(condition, x, y)
    return x if condition else y
