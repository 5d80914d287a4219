"""abkit: A/B experimentation and business-impact toolkit for ML model variants.

The public API is imported lazily (PEP 562, :mod:`abkit._lazy`), so ``from abkit import
assign`` loads only the assignment core (which needs nothing but mmh3) and never pandas,
numpy, scipy or SQLAlchemy. Heavier names load their module on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from abkit._lazy import lazy_attributes
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
    "configure_exposure_dedup": "abkit.assignment.exposure",
    "load_experiments": "abkit.assignment.registry",
    "read_registry": "abkit.assignment.registry",
    "LiveRegistry": "abkit.assignment.live",
    "LiveExperiment": "abkit.assignment.live",
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
    # results shared by every package
    "Interval": "abkit.results",
    # metrics (Python factories and TOML files) and analysis
    "Metric": "abkit.metrics",
    "Measure": "abkit.metrics",
    "proportion": "abkit.metrics",
    "mean": "abkit.metrics",
    "ratio": "abkit.metrics",
    "quantile": "abkit.metrics",
    "load_metrics": "abkit.metrics",
    "builtin_metric": "abkit.metrics",
    "analyze": "abkit.lifecycle.declared",
    "AnalysisResult": "abkit.analysis.analyze",
    "simulate_experiment": "abkit.simulate",
    "TrueEffect": "abkit.simulate",
    # report
    "render_report": "abkit.report.render",
    "run_demo": "abkit.demo",
}

__all__ = ["__version__", *_LAZY]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from abkit.analysis.analyze import AnalysisResult
    from abkit.assignment.assign import Assignment, assign, assign_many
    from abkit.assignment.config import Experiment, Holdout, Namespace, Variant
    from abkit.assignment.diff import diff_experiments
    from abkit.assignment.exposure import (
        ExposureRecord,
        add_exposure_hook,
        configure_exposure_dedup,
        remove_exposure_hook,
    )
    from abkit.assignment.live import LiveExperiment, LiveRegistry
    from abkit.assignment.registry import load_experiments, read_registry
    from abkit.demo import run_demo
    from abkit.ingest.ingestor import IngestReport, ingest
    from abkit.ingest.tracker import Tracker
    from abkit.lifecycle.declared import analyze
    from abkit.metrics import (
        Measure,
        Metric,
        builtin_metric,
        load_metrics,
        mean,
        proportion,
        quantile,
        ratio,
    )
    from abkit.report.render import render_report
    from abkit.results import Interval
    from abkit.simulate import TrueEffect, simulate_experiment
    from abkit.stats.guardrails import guardrail
    from abkit.stats.multiple import adjust_pvalues
    from abkit.stats.planning import plan_mean, plan_proportion, plan_ratio
    from abkit.stats.readout import compare, compare_variants
    from abkit.stats.srm import srm_test
    from abkit.stats.sufficient import MeanStats, RatioStats
    from abkit.store.store import Store, open_store
