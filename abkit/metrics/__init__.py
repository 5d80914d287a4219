"""Metric definitions (Python and TOML), their kinds and the built-in library.

Standard library only. ``Metric(name=..., type="proportion", numerator=Measure("purchase",
"count"))`` or the factories :func:`proportion`, :func:`mean`, :func:`ratio`; TOML files with
:func:`load_metrics`; the library with :func:`builtin_metric`.
"""

from __future__ import annotations

from abkit.metrics.definitions import (
    Covariate,
    Measure,
    Metric,
    mean,
    parse_duration_us,
    proportion,
    quantile,
    ratio,
)
from abkit.metrics.files import load_metrics, metric_from_dict
from abkit.metrics.library import (
    BUILTIN_METRICS,
    bind_covariates,
    builtin_metric,
    builtin_metrics,
)

__all__ = [
    "BUILTIN_METRICS",
    "Covariate",
    "Measure",
    "Metric",
    "bind_covariates",
    "builtin_metric",
    "builtin_metrics",
    "load_metrics",
    "mean",
    "metric_from_dict",
    "parse_duration_us",
    "proportion",
    "quantile",
    "ratio",
]
