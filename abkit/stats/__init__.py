"""Statistics on sufficient statistics: planning, readouts, checks. Knows nothing of SQL.

Names load lazily (PEP 562): ``import abkit.stats`` costs nothing until a name is used,
and nothing here ever imports SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # sufficient statistics and rendering (Contract 4)
    "MeanStats": "abkit.stats.sufficient",
    "RatioStats": "abkit.stats.sufficient",
    "ResultTable": "abkit.stats._render",
    # estimators
    "Difference": "abkit.stats.estimators",
    "ArmEstimate": "abkit.stats.estimators",
    "estimate_difference": "abkit.stats.estimators",
    "arm_estimate": "abkit.stats.estimators",
    "arm_mean": "abkit.stats.estimators",
    "arm_var_of_mean": "abkit.stats.estimators",
    "cuped_theta": "abkit.stats.estimators",
    # fixed-horizon readouts
    "LiftResult": "abkit.stats.readout",
    "compare": "abkit.stats.readout",
    "compare_difference": "abkit.stats.readout",
    "fieller_ratio_set": "abkit.stats.readout",
    "results_table": "abkit.stats.readout",
    "compare_many": "abkit.stats.readout",
    "compare_variants": "abkit.stats.readout",
    "LiftArrays": "abkit.stats.readout",
    # CUPED helpers
    "CupedSummary": "abkit.stats.cuped",
    "cuped_summary": "abkit.stats.cuped",
    # checks and corrections
    "SRMResult": "abkit.stats.srm",
    "srm_test": "abkit.stats.srm",
    "adjust_pvalues": "abkit.stats.multiple",
    "apply_correction": "abkit.stats.multiple",
    "Cap": "abkit.stats.outliers",
    "AppliedCap": "abkit.stats.outliers",
    "cap_values": "abkit.stats.outliers",
    "resolve_cap": "abkit.stats.outliers",
    # owned by the planning / sequential / Bayesian / guardrails modules
    "noninferiority": "abkit.stats.guardrails",
    "sequential_readout": "abkit.stats.sequential",
    "bayesian_readout": "abkit.stats.bayesian",
}

# Modules searched, in order, for a name not listed above (the planners and the
# sequential/Bayesian/guardrail results define their own public names).
_FALLBACK = (
    "abkit.stats.planning",
    "abkit.stats.guardrails",
    "abkit.stats.sequential",
    "abkit.stats.bayesian",
)

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    module_name = _LAZY.get(name)
    if module_name is not None:
        value = getattr(importlib.import_module(module_name), name)
        globals()[name] = value
        return value
    for candidate in _FALLBACK:
        try:
            module = importlib.import_module(candidate)
        except ModuleNotFoundError as exc:
            if exc.name != candidate:  # a real import error inside the module
                raise
            continue
        exported = getattr(module, "__all__", None)
        found = name in exported if exported is not None else hasattr(module, name)
        if found and not name.startswith("_"):
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module 'abkit.stats' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))
