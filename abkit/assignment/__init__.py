"""Deterministic assignment of units to experiment variants.

Imports only the standard library and mmh3, so services can ``from abkit import assign``
without pulling in the analysis stack. The hashing is specified in
``docs/assignment-spec.md`` and pinned by ``tests/assignment/golden_vectors.json``.
"""

from __future__ import annotations

from abkit.assignment.assign import Assignment, BulkAssignment, Reason, assign, assign_many
from abkit.assignment.config import Experiment, Holdout, Namespace, Variant
from abkit.assignment.exposure import (
    ExposureRecord,
    add_exposure_hook,
    exposure_hook_errors,
    remove_exposure_hook,
)

# Registry files and the config diff are not needed on the request path: load them on
# first use (PEP 562) to keep ``from abkit import assign`` fast.
_LAZY = {
    "ConfigDiff": "abkit.assignment.diff",
    "ExperimentDiff": "abkit.assignment.diff",
    "diff_experiments": "abkit.assignment.diff",
    "Registry": "abkit.assignment.registry",
    "load_experiments": "abkit.assignment.registry",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'abkit.assignment' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Assignment",
    "BulkAssignment",
    "ConfigDiff",
    "Experiment",
    "ExperimentDiff",
    "ExposureRecord",
    "Holdout",
    "Namespace",
    "Reason",
    "Registry",
    "Variant",
    "add_exposure_hook",
    "assign",
    "assign_many",
    "diff_experiments",
    "exposure_hook_errors",
    "load_experiments",
    "remove_exposure_hook",
]
