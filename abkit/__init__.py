"""abkit: A/B experimentation and business-impact toolkit for ML model variants.

The public API is imported lazily (PEP 562), so ``from abkit import assign`` loads only
the assignment core (which needs nothing but mmh3) and never pandas, numpy, scipy or
SQLAlchemy. Heavier names load their module on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from abkit._version import __version__

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # assignment (core: mmh3 only)
    "Experiment": "abkit.assignment.config",
    "Variant": "abkit.assignment.config",
    "Namespace": "abkit.assignment.config",
    "Holdout": "abkit.assignment.config",
    "Assignment": "abkit.assignment.assign",
    "assign": "abkit.assignment.assign",
    "assign_many": "abkit.assignment.assign",
    "ExposureRecord": "abkit.assignment.exposure",
    "add_exposure_hook": "abkit.assignment.exposure",
    "remove_exposure_hook": "abkit.assignment.exposure",
    "load_experiments": "abkit.assignment.registry",
    "diff_experiments": "abkit.assignment.diff",
    # store and ingest
    "Store": "abkit.store.store",
    "open_store": "abkit.store.store",
    "ingest": "abkit.ingest.ingestor",
    "IngestReport": "abkit.ingest.ingestor",
    "Tracker": "abkit.ingest.tracker",
    # statistics on sufficient statistics
    "MeanStats": "abkit.stats.sufficient",
    "RatioStats": "abkit.stats.sufficient",
    "compare": "abkit.stats.readout",
    "compare_variants": "abkit.stats.readout",
    "srm_test": "abkit.stats.srm",
    "adjust_pvalues": "abkit.stats.multiple",
    "plan_proportion": "abkit.stats.planning",
    "plan_mean": "abkit.stats.planning",
    "plan_ratio": "abkit.stats.planning",
    "guardrail": "abkit.stats.guardrails",
    # metrics and analysis
    "Metric": "abkit.metrics.definitions",
    "load_metrics": "abkit.metrics.definitions",
    "analyze": "abkit.analysis.analyze",
    "AnalysisResult": "abkit.analysis.analyze",
    "simulate_experiment": "abkit.analysis.simulate",
    "TrueEffect": "abkit.analysis.simulate",
    "builtin_metric": "abkit.metrics.library",
    # report
    "render_report": "abkit.report.render",
    "run_demo": "abkit.demo",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'abkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from abkit.analysis.analyze import AnalysisResult, analyze
    from abkit.analysis.simulate import TrueEffect, simulate_experiment
    from abkit.assignment.assign import Assignment, assign, assign_many
    from abkit.assignment.config import Experiment, Holdout, Namespace, Variant
    from abkit.assignment.diff import diff_experiments
    from abkit.assignment.exposure import ExposureRecord, add_exposure_hook, remove_exposure_hook
    from abkit.assignment.registry import load_experiments
    from abkit.demo import run_demo
    from abkit.ingest.ingestor import IngestReport, ingest
    from abkit.ingest.tracker import Tracker
    from abkit.metrics.definitions import Metric, load_metrics
    from abkit.metrics.library import builtin_metric
    from abkit.report.render import render_report
    from abkit.stats.guardrails import guardrail
    from abkit.stats.multiple import adjust_pvalues
    from abkit.stats.planning import plan_mean, plan_proportion, plan_ratio
    from abkit.stats.readout import compare, compare_variants
    from abkit.stats.srm import srm_test
    from abkit.stats.sufficient import MeanStats, RatioStats
    from abkit.store.store import Store, open_store
