"""Deterministic assignment of units to experiment variants.

Imports only the standard library and mmh3, so services can ``from abkit import assign``
without pulling in the analysis stack. The hashing is specified in
``docs/assignment-spec.md`` and pinned by ``tests/assignment/golden_vectors.json``.
"""

from __future__ import annotations

from abkit._lazy import lazy_attributes
from abkit.assignment.assign import Assignment, BulkAssignment, Reason, assign, assign_many
from abkit.assignment.config import Experiment, Holdout, Namespace, Variant
from abkit.assignment.exposure import (
    ExposureRecord,
    add_exposure_hook,
    configure_exposure_dedup,
    exposure_hook_errors,
    remove_exposure_hook,
)

# Registry files, the live registry and the config diff are not needed to import the
# request path: load them on first use (PEP 562) to keep ``from abkit import assign`` fast.
_LAZY = {
    "ConfigDiff": "abkit.assignment.diff",
    "ExperimentDiff": "abkit.assignment.diff",
    "diff_experiments": "abkit.assignment.diff",
    "LiveExperiment": "abkit.assignment.live",
    "LiveRegistry": "abkit.assignment.live",
    "Registry": "abkit.assignment.registry",
    "load_experiments": "abkit.assignment.registry",
    "parse_registry": "abkit.assignment.registry",
    "read_registry": "abkit.assignment.registry",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "Assignment",
    "BulkAssignment",
    "ConfigDiff",
    "Experiment",
    "ExperimentDiff",
    "ExposureRecord",
    "Holdout",
    "LiveExperiment",
    "LiveRegistry",
    "Namespace",
    "Reason",
    "Registry",
    "Variant",
    "add_exposure_hook",
    "assign",
    "assign_many",
    "configure_exposure_dedup",
    "diff_experiments",
    "exposure_hook_errors",
    "load_experiments",
    "parse_registry",
    "read_registry",
    "remove_exposure_hook",
]
