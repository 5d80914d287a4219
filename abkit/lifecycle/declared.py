"""Which declared spec an analysis reads, and the spec-aware :func:`analyze`.

One rule, used by every entry point (``abkit.analyze`` in Python and notebooks,
``abkit analyze``, ``abkit report``, the report templates, the demo), so one experiment has
one verdict however it is read:

1. the spec given explicitly (a file path, a :class:`~abkit.lifecycle.spec.SpecFile` or an
   :class:`~abkit.lifecycle.spec.ExperimentSpec`); it must declare the experiment;
2. else the default spec file (``$ABKIT_SPEC``, ``./experiments.toml``,
   ``./reports/experiments.toml``) when it declares the experiment;
3. else the newest version of the experiment's spec that the store has recorded (the
   controller records every version it reads), so a notebook opened far from the spec
   file reads what the controller acted on;
4. else none: the analysis uses the arguments given, or the built-in default metrics.

Arguments passed to :func:`analyze` override the spec field by field, as flags do on the
command line. The result states the spec version it used (``result.experiment.spec_version``)
and :attr:`DeclaredSpec.origin` says where that version came from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from abkit.analysis.analyze import AnalysisResult
from abkit.analysis.analyze import analyze as analyze_inputs
from abkit.errors import ConfigError, StoreError
from abkit.lifecycle.audit import read_spec_versions
from abkit.lifecycle.spec import (
    ExperimentSpec,
    SpecFile,
    default_spec_path,
    load_specs,
    resolve_analysis_inputs,
    specs_from_text,
)
from abkit.store.store import Store, open_store
from abkit.timeutil import from_us


@dataclass(frozen=True)
class DeclaredSpec:
    """The spec an analysis reads and where it came from (``origin``, for the reader)."""

    spec: ExperimentSpec
    origin: str


def find_spec(
    experiment: str, *, spec: str | Path | SpecFile | ExperimentSpec | None = None, db: Any = None
) -> DeclaredSpec | None:
    """The declared spec of ``experiment`` by the module's rule, or None.

    ``db`` (a database URL or a :class:`~abkit.store.store.Store`) is read only for step 3;
    any other kind of ``db`` (a query runner, a Spark URL) skips that step.
    """
    if isinstance(spec, ExperimentSpec):
        if spec.key != experiment:
            raise ConfigError(
                f"the spec given declares {spec.key!r}, not {experiment!r}", file=spec.file
            )
        return DeclaredSpec(spec, f"spec {spec.file or '(in memory)'}")
    if spec is not None:
        specs = spec if isinstance(spec, SpecFile) else load_specs(spec)
        return DeclaredSpec(specs[experiment], f"spec file {specs.path}")
    path = default_spec_path()
    if path is not None:
        specs = load_specs(path)
        if experiment in specs.specs:
            return DeclaredSpec(specs[experiment], f"spec file {path}")
    return _stored_spec(experiment, db)


def _stored_spec(experiment: str, db: Any) -> DeclaredSpec | None:
    """Step 3: the newest recorded version, parsed as a one-entry spec file whose metric
    catalog paths resolve beside the file it was read from."""
    if not isinstance(db, Store) and not (isinstance(db, str) and "://" in db):
        return None
    if isinstance(db, str) and db.split("://", 1)[0] in ("spark", "sc"):
        return None
    try:
        store = open_store(db, readonly=True)
    except StoreError:
        return None  # not an abkit store (yet): the analysis that follows says so
    try:
        versions = read_spec_versions(store, experiment)
    finally:
        if store is not db:
            store.engine.dispose()
    if not versions:
        return None
    newest = versions[-1]
    where = f"store spec version {newest['version'][:12]}"
    base_dir = Path(newest["file"]).parent if newest.get("file") else None
    document = json.dumps({"experiments": [json.loads(newest["content"])]})
    specs = specs_from_text(document, fmt="json", source=where, base_dir=base_dir)
    seen = from_us(newest["seen_at_us"]).isoformat(timespec="seconds")
    return DeclaredSpec(specs[experiment], f"{where} (seen {seen})")


def analyze(
    db: Any,
    experiment: str,
    metrics: Any = None,
    *,
    spec: str | Path | SpecFile | ExperimentSpec | None = None,
    **overrides: Any,
) -> AnalysisResult:
    """Analyse ``experiment`` with the inputs its spec declares (module docstring).

    ``metrics`` and the keyword ``overrides`` (``method``, ``alpha``, ``correction``,
    ``cuped``, ``business``, and every other keyword of
    :func:`abkit.analysis.analyze.analyze`) win over the spec. Without any spec this is
    exactly :func:`abkit.analysis.analyze.analyze`.
    """
    declared = find_spec(experiment, spec=spec, db=db)
    if declared is None:
        return analyze_inputs(db, experiment, metrics, **overrides)
    spec_fields = ("method", "alpha", "correction", "cuped", "business")
    given = {k: overrides.pop(k) for k in spec_fields if overrides.get(k) is not None}
    for k in spec_fields:
        overrides.pop(k, None)
    declared_business = declared.spec.business
    if isinstance(given.get("business"), Mapping) and declared_business is not None:
        # A partial business mapping amends the declared one, as the CLI's flags do.
        given["business"] = {**declared_business.to_dict(), **given["business"]}
    inputs = resolve_analysis_inputs(declared.spec, **given).analyze_kwargs()
    if metrics is not None:
        inputs["metrics"] = metrics
    return analyze_inputs(db, experiment, **{**inputs, **overrides})


__all__ = ["DeclaredSpec", "analyze", "find_spec"]
