"""Metric kinds: what one kind of metric computes per unit and per arm, declared in one module.

A kind (``proportion``, ``mean``, ``ratio``, ...) is an object satisfying :class:`Kind`. It says

* how a metric of this kind is validated (``validate``),
* which **per-unit values** the analysis computes in SQL (``unit_values``: named
  :class:`UnitValue` items, each one of the metric's measures over its window or its
  pre-period, optionally as a 0/1 indicator or capped),
* which **per-arm aggregates** of those values the database returns (``arm_aggregates``:
  :class:`ArmSum` products such as ``Σ y·d``, or :class:`ArmPercentile` order statistics),
  named after the fields of its sufficient-statistics type,
* how the returned aggregates become sufficient statistics (``stats``), and
* whether those statistics add up across days of first exposure (``additive``: true when
  every aggregate is a sum; the analysis then sums per-day rows into totals and the
  cumulative daily series; a non-additive kind is aggregated over the whole period).

The SQL is written once, generically, by :mod:`abkit.analysis.sql` from these declarations,
so adding a kind is one module here plus one line in :data:`_BUILTIN` (and its name in
``abkit.vocabulary.MetricType``); see ``tests/metrics/test_kinds.py`` for a kind defined
entirely in a test. This package is standard library only (the sufficient-statistics types
of :mod:`abkit.stats.sufficient` are too).
"""

from __future__ import annotations

from abkit.metrics.kinds import mean, proportion, quantile, ratio
from abkit.metrics.kinds.base import (
    ArmAggregate,
    ArmPercentile,
    ArmSum,
    EventQuantile,
    Kind,
    UnitValue,
    is_additive,
    kind_names,
    kind_of,
    register_kind,
)

# The shipped kinds, in the order their names are listed in messages.
_BUILTIN: tuple[Kind, ...] = (proportion.KIND, mean.KIND, ratio.KIND, quantile.KIND)
for _kind in _BUILTIN:
    register_kind(_kind)

__all__ = [
    "ArmAggregate",
    "ArmPercentile",
    "ArmSum",
    "EventQuantile",
    "Kind",
    "UnitValue",
    "is_additive",
    "kind_names",
    "kind_of",
    "register_kind",
]
