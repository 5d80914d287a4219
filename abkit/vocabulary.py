"""Every closed vocabulary of abkit, declared once.

Each vocabulary is a ``Literal`` type (for the type checker) and the tuple of its values (for
validation and for the CLI's ``choices``), kept equal by ``typing.get_args``. This module is
stdlib-only, so the assignment core may import it without pulling in anything heavy.
"""

from __future__ import annotations

from typing import Literal, get_args

# How a metric aggregates per unit and is analysed (see abkit.metrics.kinds for each kind).
MetricType = Literal["proportion", "mean", "ratio", "quantile"]
METRIC_TYPES: tuple[MetricType, ...] = get_args(MetricType)

# What a metric's figures are measured in (how reports format them).
MetricUnit = Literal["number", "currency", "percent", "count", "duration"]
METRIC_UNITS: tuple[MetricUnit, ...] = get_args(MetricUnit)

# What a quantile metric ranks: the event values, or one value per unit (the numerator's
# aggregate over the unit's window).
QuantileOf = Literal["event", "unit"]
QUANTILES_OF: tuple[QuantileOf, ...] = get_args(QuantileOf)

# How a readout turns sufficient statistics into evidence.
Method = Literal["fixed", "sequential", "bayesian", "confseq", "exact"]
METHODS: tuple[Method, ...] = get_args(Method)

# The alternative hypothesis about treatment minus control.
Alternative = Literal["two-sided", "larger", "smaller"]
ALTERNATIVES: tuple[Alternative, ...] = get_args(Alternative)

# The part a metric plays in the decision.
Role = Literal["primary", "secondary", "guardrail"]
ROLES: tuple[Role, ...] = get_args(Role)

# Which way is good for a metric.
Direction = Literal["higher", "lower"]
DIRECTIONS: tuple[Direction, ...] = get_args(Direction)

# Multiple-testing correction applied across a readout's comparisons.
Correction = Literal["holm", "bh", "bonferroni", "none"]
CORRECTIONS: tuple[Correction, ...] = get_args(Correction)

# What the analysis recommends.
Verdict = Literal["ship", "roll back", "keep running", "no detectable effect"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)

# The state of one guardrail after its readout.
GuardrailStatus = Literal["pass", "fail", "inconclusive"]
GUARDRAIL_STATUSES: tuple[GuardrailStatus, ...] = get_args(GuardrailStatus)

# The lifecycle state of an experiment (a spec with no status is a draft).
ExperimentStatus = Literal["draft", "running", "paused", "stopped"]
EXPERIMENT_STATUSES: tuple[ExperimentStatus, ...] = get_args(ExperimentStatus)

# Where a metric's regression-adjustment covariate comes from: the pre-period value of a
# metric ("pre"), or a model's per-unit prediction supplied as events ("prediction": CUPAC).
CovariateSource = Literal["pre", "prediction"]
COVARIATE_SOURCES: tuple[CovariateSource, ...] = get_args(CovariateSource)

# How an analysis gets its per-unit aggregates from abkit's store cache
# (abkit.analysis.incremental): "auto" merges the rows ingested since the last refresh when
# it can and rebuilds the cache otherwise; "incremental" insists (an error says why a rebuild
# is needed); "full" rebuilds the cache from every row.
RefreshMode = Literal["auto", "incremental", "full"]
REFRESH_MODES: tuple[RefreshMode, ...] = get_args(RefreshMode)

# What a refresh did: merged the new rows, rebuilt the cache, or read every row without the
# cache (a source or engine the cache does not serve).
RefreshAction = Literal["incremental", "full rebuild", "full analysis"]
REFRESH_ACTIONS: tuple[RefreshAction, ...] = get_args(RefreshAction)
