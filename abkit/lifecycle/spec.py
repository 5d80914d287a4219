"""The experiment spec: everything about an experiment, declared once in the registry file.

Each ``[[experiments]]`` entry of a registry file (TOML or JSON) holds the assignment
configuration that :mod:`abkit.assignment` serves (key, variants and payloads, traffic,
namespace, targeting, holdout, status, winner) and, in its own sections, what the rest of
abkit needs to read, decide and act on it::

    metrics    primary, secondary and guardrail metrics (names from the built-in library,
               a shared catalog file, or inline ``define`` tables), the effect the test is
               sized for and the planned sample
    business   how a lift becomes money: impact metric, value per unit, currency, period
    readout    method (fixed | sequential | bayesian), alpha, correction, CUPED, and whether
               a final decision is applied by the controller or only proposed
    ramp       stages of traffic (1% -> 5% -> 20% -> 50%), each with a minimum duration
               and/or number of units before the controller advances
    safety     which guardrails stop the experiment automatically, the error rate of that
               rule (the chance of a false rollback over the experiment's life), and the
               variant served after a rollback
    source     where the data lives: a source file or inline table (the user's own tables,
               :mod:`abkit.analysis.sources`); none means abkit's store

An entry without ``status`` is a draft: it is validated, listed, and served nothing but its
control. Every field is documented in ``docs/spec.md``; :func:`spec_json_schema` exports a
JSON Schema for editors. Errors name the file, the experiment, the field and the line.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

from abkit.analysis.impact import PERIODS
from abkit.analysis.sources import Source, load_source, source_from_dict
from abkit.assignment.config import Experiment
from abkit.assignment.registry import (
    RawExperiment,
    Registry,
    parse_registry,
    registry_from_dict,
)
from abkit.errors import ConfigError
from abkit.metrics.definitions import Metric
from abkit.metrics.files import load_metrics, metric_from_dict
from abkit.metrics.library import builtin_metric
from abkit.vocabulary import (
    CORRECTIONS,
    DIRECTIONS,
    METHODS,
    Correction,
    ExperimentStatus,
    Method,
)

# Whether the controller applies a final decision itself or records it for a person.
Policy = Literal["automatic", "propose"]
POLICIES: tuple[Policy, ...] = get_args(Policy)

_METRICS_KEYS = ("catalog", "primary", "secondary", "guardrails", "define", "mde", "planned_units")
_REF_KEYS = ("metric", "direction", "margin", "mde", "covariates")
_BUSINESS_KEYS = ("metric", "value_per_unit", "currency", "period", "eligible_units_per_day")
_READOUT_KEYS = ("method", "alpha", "correction", "cuped", "decision")
_RAMP_KEYS = ("stages",)
_STAGE_KEYS = ("traffic", "min_hours", "min_units")
_SAFETY_KEYS = ("guardrails", "alpha", "rollback_variant", "action", "tau_relative")


# --------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class MetricsSpec:
    """The experiment's metrics, resolved to :class:`~abkit.metrics.definitions.Metric`.

    ``primary`` has role ``primary``, each guardrail role ``guardrail`` with its declared
    direction and non-inferiority ``margin`` (relative). ``mde`` is the relative effect the
    test is sized for (set on the primary metric); ``planned_units`` the planned sample
    (all arms), read by the controller as the horizon of a fixed-horizon decision.
    """

    primary: Metric
    secondary: tuple[Metric, ...] = ()
    guardrails: tuple[Metric, ...] = ()
    catalog: str | None = None
    mde: float | None = None
    planned_units: int | None = None

    @property
    def all(self) -> tuple[Metric, ...]:
        """Primary, secondary and guardrail metrics, in that order."""
        return (self.primary, *self.secondary, *self.guardrails)

    def guardrail(self, name: str) -> Metric:
        for metric in self.guardrails:
            if metric.name == name:
                return metric
        raise KeyError(name)


@dataclass(frozen=True)
class BusinessSpec:
    """How a lift becomes money (see :class:`abkit.analysis.impact.BusinessAssumptions`)."""

    metric: str | None = None
    value_per_unit: float = 1.0
    currency: str = ""
    period: str = "year"
    eligible_units_per_day: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value_per_unit": self.value_per_unit,
            "currency": self.currency,
            "period": self.period,
            "eligible_units_per_day": self.eligible_units_per_day,
        }


@dataclass(frozen=True)
class ReadoutSpec:
    """How the experiment is read, and who applies a final decision (``decision``)."""

    method: Method = "fixed"
    alpha: float = 0.05
    correction: Correction = "holm"
    cuped: bool = True
    decision: Policy = "propose"


@dataclass(frozen=True)
class RampStage:
    """One stage: the experiment's ``traffic`` and the minimum before leaving the stage.

    ``min_hours`` counts from the moment the stage started; ``min_units`` is the number of
    units enrolled in the experiment (all arms, all stages so far) when the stage may end.
    """

    traffic: float
    min_hours: float | None = None
    min_units: int | None = None

    def minimum_met(self, hours_in_stage: Any, units: Any) -> Any:
        """Whether the stage may end (works elementwise on numpy arrays too)."""
        hours_ok = True if self.min_hours is None else hours_in_stage >= self.min_hours
        units_ok = True if self.min_units is None else units >= self.min_units
        return hours_ok & units_ok


@dataclass(frozen=True)
class RampPlan:
    """Increasing stages of traffic; raising ``traffic`` never reshuffles enrolled units."""

    stages: tuple[RampStage, ...]

    def index_of(self, traffic: float) -> int | None:
        """The stage serving ``traffic`` (None when the traffic is not a stage)."""
        for i, stage in enumerate(self.stages):
            if math.isclose(stage.traffic, traffic, rel_tol=0.0, abs_tol=1e-12):
                return i
        return None


@dataclass(frozen=True)
class SafetyPolicy:
    """Which guardrails stop the experiment, and how sure the rule must be.

    ``alpha`` bounds the probability of rolling back a harmless variant over the whole life
    of the experiment, however often the controller looks (always-valid mSPRT, split by
    Bonferroni over guardrails and treatment arms). ``tau_relative`` is the harm the test is
    tuned to find, as a fraction of the control mean (the mixing scale of the mSPRT).
    ``action``: ``automatic`` rolls back at once; ``propose`` records it for a person.
    """

    guardrails: tuple[str, ...]
    alpha: float = 0.05
    rollback_variant: str = ""
    action: Policy = "automatic"
    tau_relative: float = 0.10

    def test_alpha(self, treatments: int) -> float:
        """The level of each test: ``alpha`` split over guardrails and treatment arms."""
        return self.alpha / (len(self.guardrails) * max(treatments, 1))


@dataclass(frozen=True)
class ExperimentSpec:
    """One declared experiment: its assignment config and its lifecycle sections.

    ``raw`` is the entry as written (for hashing and for writing new versions);
    ``version`` is the SHA-256 of its canonical JSON, so a change to another experiment
    in the same file is not a new version of this one.
    """

    experiment: Experiment
    metrics: MetricsSpec | None = None
    business: BusinessSpec | None = None
    readout: ReadoutSpec = field(default_factory=ReadoutSpec)
    ramp: RampPlan | None = None
    safety: SafetyPolicy | None = None
    source: Source | None = field(default=None, hash=False)
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)
    file: str | None = None

    @property
    def key(self) -> str:
        return self.experiment.key

    @property
    def status(self) -> ExperimentStatus:
        # Experiment validates its status against the same vocabulary.
        return cast(ExperimentStatus, self.experiment.status)

    @property
    def version(self) -> str:
        return content_hash(self.raw)

    @property
    def stage(self) -> int | None:
        """Index of the current ramp stage (None without a ramp)."""
        return None if self.ramp is None else self.ramp.index_of(self.experiment.traffic)


@dataclass(frozen=True)
class SpecFile:
    """Every experiment spec of one registry file, plus the assignment registry."""

    specs: Mapping[str, ExperimentSpec]
    registry: Registry
    path: str | None
    text: str
    fmt: Literal["toml", "json"]
    file_hash: str

    def __getitem__(self, key: str) -> ExperimentSpec:
        try:
            return self.specs[key]
        except KeyError:
            known = ", ".join(sorted(self.specs)) or "none"
            raise ConfigError(
                f"no experiment {key!r} in the spec file (known: {known})",
                file=self.path,
                field="key",
            ) from None


SPEC_ENV = "ABKIT_SPEC"
# Where a spec file is looked for when none is given (the second is what `abkit demo` writes).
SPEC_CANDIDATES: tuple[str, ...] = ("experiments.toml", "reports/experiments.toml")


def default_spec_path() -> Path | None:
    """``$ABKIT_SPEC``, else the first existing of :data:`SPEC_CANDIDATES` in the working
    directory, else None (the commands then run without a spec)."""
    import os

    given = os.environ.get(SPEC_ENV)
    if given:
        return Path(given)
    for candidate in SPEC_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def _json_fallback(value: Any) -> Any:
    # A parsed entry's tables are read-only mappings; TOML dates and times become ISO text.
    if isinstance(value, Mapping):
        return dict(value)
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def canonical_json(raw: Mapping[str, Any]) -> str:
    """One experiment entry as canonical JSON (sorted keys, no spaces): what its version
    hashes and what the store keeps, so a stored version parses back into the same spec."""
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), default=_json_fallback)


def content_hash(raw: Mapping[str, Any]) -> str:
    """SHA-256 of :func:`canonical_json` of one experiment entry."""
    return hashlib.sha256(canonical_json(raw).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- loading
def load_specs(path: str | Path) -> SpecFile:
    """Read and validate a spec (registry) file, TOML or JSON by extension or content."""
    p = Path(path)
    name = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("spec file not found", file=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read spec file: {exc}", file=name) from None
    return specs_from_text(text, source=name, base_dir=p.parent)


def specs_from_text(
    text: str | bytes,
    *,
    fmt: Literal["toml", "json"] | None = None,
    source: str | None = None,
    base_dir: Path | None = None,
) -> SpecFile:
    """Validate spec text; ``base_dir`` resolves relative metric catalog paths.

    Parsing (with its guards against hostile files) and line location are the registry's
    (:func:`abkit.assignment.registry.parse_registry`); the assignment part is validated
    again with the spec's defaults: no status means draft, a ramp's first stage is the
    default traffic.
    """
    if not text.strip():
        raise ConfigError("the spec file is empty", file=source)
    doc = parse_registry(text, source=source, fmt=fmt or _guess_format(text, source))
    assignment_entries = []
    for raw in doc.entries.values():
        entry = dict(raw.data)
        # An entry without a status is a draft, never served by accident.
        entry.setdefault("status", "draft")
        first = _first_stage_traffic(raw.data.get("ramp"))
        if first is not None:
            entry.setdefault("traffic", first)
        assignment_entries.append(entry)
    registry = registry_from_dict(
        {**doc.data, "experiments": assignment_entries}, source=source, text=doc.text, fmt=doc.fmt
    )
    specs = {
        key: _spec_from_entry(raw, registry[key], base_dir or Path("."))
        for key, raw in doc.entries.items()
    }
    return SpecFile(MappingProxyType(specs), registry, source, doc.text, doc.fmt, doc.content_hash)


def _guess_format(text: str | bytes, source: str | None) -> Literal["toml", "json"]:
    """By the file's suffix, else by content: a TOML file may also start with ``[``
    (``[[experiments]]``), a JSON list starts with ``[`` then ``{`` or ``]``."""
    suffix = Path(source).suffix.lower() if source else ""
    if suffix in (".toml", ".json"):
        return "toml" if suffix == ".toml" else "json"
    head = (text if isinstance(text, str) else text[:64].decode("utf-8", "replace")).lstrip()
    is_json = head[:1] == "{" or re.match(r"\[\s*[\{\]]", head) is not None
    return "json" if is_json else "toml"


def service_registry(content: bytes, source: str) -> Registry:
    """The registry a service serves from a spec file, with the spec's semantics (drafts
    serve their control); the loader of :class:`abkit.assignment.live.LiveRegistry`."""
    return specs_from_text(content, source=source, base_dir=Path(source).parent).registry


def _first_stage_traffic(ramp: Any) -> float | None:
    """The first stage's traffic of a ramp as written (the default ``traffic``)."""
    if isinstance(ramp, Mapping):
        stages = ramp.get("stages")
        if isinstance(stages, list) and stages and isinstance(stages[0], Mapping):
            first = stages[0].get("traffic")
            if isinstance(first, (int, float)) and not isinstance(first, bool):
                return float(first)
    return None


@dataclass(frozen=True)
class _Where:
    raw: RawExperiment

    def error(self, message: str, path: str) -> ConfigError:
        line = self.raw.line(path)
        where = f" (line {line})" if line else ""
        return ConfigError(
            f"experiment {self.raw.key!r}{where}: {path}: {message}",
            file=self.raw.source,
            row=line,
            field=path,
        )


def _table(value: Any, path: str, keys: Sequence[str], where: _Where) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error("must be a table/object", path)
    unknown = [k for k in value if k not in keys]
    if unknown:
        import difflib

        close = difflib.get_close_matches(str(unknown[0]), keys, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise where.error(
            f"unknown field {unknown[0]!r}{hint}; allowed: {', '.join(keys)}",
            f"{path}.{unknown[0]}",
        )
    return value


def _number(
    value: Any, path: str, where: _Where, *, low: float, high: float, open_low: bool = True
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise where.error(f"must be a number, got {value!r}", path)
    ok_low = value > low if open_low else value >= low
    if not (ok_low and value <= high):
        bracket = "(" if open_low else "["
        raise where.error(f"must be in {bracket}{low:g}, {high:g}], got {value!r}", path)
    return float(value)


def _count(value: Any, path: str, where: _Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise where.error(f"must be a positive integer, got {value!r}", path)
    return value


def _choice(value: Any, path: str, where: _Where, choices: Sequence[str]) -> Any:
    if value not in choices:
        raise where.error(f"must be one of {', '.join(choices)}, got {value!r}", path)
    return value


def _spec_from_entry(raw: RawExperiment, experiment: Experiment, base_dir: Path) -> ExperimentSpec:
    entry = raw.data
    where = _Where(raw)
    metrics = None
    if entry.get("metrics") is not None:
        metrics = _metrics(entry["metrics"], where, base_dir)
    business = None
    if entry.get("business") is not None:
        business = _business(entry["business"], where, metrics)
    readout = ReadoutSpec()
    if entry.get("readout") is not None:
        readout = _readout(entry["readout"], where)
    ramp = None
    if entry.get("ramp") is not None:
        ramp = _ramp(entry["ramp"], where)
        if ramp.index_of(experiment.traffic) is None and experiment.status != "stopped":
            stages = ", ".join(f"{s.traffic:g}" for s in ramp.stages)
            raise where.error(
                f"traffic {experiment.traffic:g} is not a ramp stage ({stages})", "traffic"
            )
    safety = None
    if entry.get("safety") is not None:
        safety = _safety(entry["safety"], where, metrics, experiment)
    source = _source(entry.get("source"), where, base_dir)
    return ExperimentSpec(
        experiment=experiment,
        metrics=metrics,
        business=business,
        readout=readout,
        ramp=ramp,
        safety=safety,
        source=source,
        raw=MappingProxyType(dict(entry)),
        file=raw.source,
    )


def _source(value: Any, where: _Where, base_dir: Path) -> Source | None:
    """Where the experiment's data lives: a source file (relative to the spec file) or an
    inline table with the keys of one (:mod:`abkit.analysis.sources`); None: abkit's store."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return load_source(base_dir / value)
        if isinstance(value, Mapping):
            return source_from_dict(value, file=f"{where.raw.source or 'spec'}: source")
    except ConfigError as exc:
        raise where.error(f"{exc.message} ({exc.location.file or 'inline'})", "source") from None
    raise where.error("must be a source file path or a table", "source")


def _metrics(value: Any, where: _Where, base_dir: Path) -> MetricsSpec:
    section = _table(value, "metrics", _METRICS_KEYS, where)
    known: dict[str, Metric] = {}
    catalog = section.get("catalog")
    if catalog is not None:
        if not isinstance(catalog, str) or not catalog:
            raise where.error("must be the path of a metrics TOML file", "metrics.catalog")
        path = Path(catalog) if Path(catalog).is_absolute() else base_dir / catalog
        try:
            known.update({m.name: m for m in load_metrics(path)})
        except ConfigError as exc:
            raise where.error(f"in the catalog: {exc}", "metrics.catalog") from None
    defines = section.get("define") or []
    if not isinstance(defines, list):
        raise where.error("must be a list of metric tables", "metrics.define")
    for i, raw in enumerate(defines):
        if not isinstance(raw, Mapping):
            raise where.error("must be a metric table", f"metrics.define[{i}]")
        try:
            metric = metric_from_dict(raw)
        except ConfigError as exc:
            raise where.error(exc.message, f"metrics.define[{i}].{exc.location.field}") from None
        known[metric.name] = metric

    def resolve(ref: Any, path: str, role: str) -> Metric:
        options: Mapping[str, Any] = {}
        if isinstance(ref, Mapping):
            options = _table(ref, path, _REF_KEYS, where)
            name = options.get("metric")
        else:
            name = ref
        if not isinstance(name, str) or not name:
            raise where.error("must be a metric name or {metric = name, ...}", path)
        metric = known.get(name)
        if metric is None:
            try:
                metric = builtin_metric(name)
            except KeyError:
                raise where.error(
                    f"unknown metric {name!r}: not defined in metrics.define, the catalog or "
                    "the built-in library",
                    path,
                ) from None
        changes: dict[str, Any] = {"role": role}
        if "direction" in options:
            changes["direction"] = _choice(
                options["direction"], f"{path}.direction", where, DIRECTIONS
            )
        if "margin" in options:
            changes["margin"] = _number(options["margin"], f"{path}.margin", where, low=0, high=1)
        if "mde" in options:
            changes["mde"] = _number(options["mde"], f"{path}.mde", where, low=0, high=10)
        if "covariates" in options:  # regression adjustment: ["pre:<metric>", "prediction:<event>"]
            covariates = options["covariates"]
            if not isinstance(covariates, list) or not all(isinstance(c, str) for c in covariates):
                raise where.error(
                    "must be a list such as ['pre:orders_per_user', 'prediction:revenue_model']",
                    f"{path}.covariates",
                )
            changes["covariates"] = tuple(covariates)
        try:
            return metric.with_(**changes)
        except ConfigError as exc:
            raise where.error(exc.message, f"{path}.{exc.location.field or 'metric'}") from None

    if "primary" not in section:
        raise where.error("needs a primary metric", "metrics.primary")
    primary = resolve(section["primary"], "metrics.primary", "primary")
    mde = None
    if section.get("mde") is not None:
        mde = _number(section["mde"], "metrics.mde", where, low=0, high=10)
        primary = primary.with_(mde=mde)

    def many(name: str, role: str) -> tuple[Metric, ...]:
        refs = section.get(name) or []
        if not isinstance(refs, list):
            raise where.error("must be a list", f"metrics.{name}")
        return tuple(resolve(r, f"metrics.{name}[{i}]", role) for i, r in enumerate(refs))

    secondary = many("secondary", "secondary")
    guardrails = many("guardrails", "guardrail")
    names = [m.name for m in (primary, *secondary, *guardrails)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise where.error(f"metric {dupes[0]!r} is listed twice", "metrics")
    planned = section.get("planned_units")
    return MetricsSpec(
        primary=primary,
        secondary=secondary,
        guardrails=guardrails,
        catalog=catalog,
        mde=mde,
        planned_units=None if planned is None else _count(planned, "metrics.planned_units", where),
    )


def _business(value: Any, where: _Where, metrics: MetricsSpec | None) -> BusinessSpec:
    section = _table(value, "business", _BUSINESS_KEYS, where)
    metric = section.get("metric")
    if metric is not None:
        if not isinstance(metric, str):
            raise where.error("must be a metric name", "business.metric")
        if metrics is not None and metric not in {m.name for m in metrics.all}:
            raise where.error(
                f"{metric!r} is not one of the experiment's metrics", "business.metric"
            )
    currency = section.get("currency", "")
    if not isinstance(currency, str):
        raise where.error("must be text such as 'USD'", "business.currency")
    eligible = section.get("eligible_units_per_day")
    return BusinessSpec(
        metric=metric,
        value_per_unit=_number(
            section.get("value_per_unit", 1.0), "business.value_per_unit", where, low=0, high=1e12
        ),
        currency=currency,
        period=_choice(section.get("period", "year"), "business.period", where, tuple(PERIODS)),
        eligible_units_per_day=None
        if eligible is None
        else _number(eligible, "business.eligible_units_per_day", where, low=0, high=1e15),
    )


def _readout(value: Any, where: _Where) -> ReadoutSpec:
    section = _table(value, "readout", _READOUT_KEYS, where)
    cuped = section.get("cuped", True)
    if not isinstance(cuped, bool):
        raise where.error("must be true or false", "readout.cuped")
    return ReadoutSpec(
        method=_choice(section.get("method", "fixed"), "readout.method", where, METHODS),
        alpha=_number(section.get("alpha", 0.05), "readout.alpha", where, low=0, high=0.499),
        correction=_choice(
            section.get("correction", "holm"), "readout.correction", where, CORRECTIONS
        ),
        cuped=cuped,
        decision=_choice(section.get("decision", "propose"), "readout.decision", where, POLICIES),
    )


def _ramp(value: Any, where: _Where) -> RampPlan:
    section = _table(value, "ramp", _RAMP_KEYS, where)
    raw_stages = section.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise where.error("needs a non-empty list of stages", "ramp.stages")
    stages: list[RampStage] = []
    for i, raw in enumerate(raw_stages):
        path = f"ramp.stages[{i}]"
        stage = _table(raw, path, _STAGE_KEYS, where)
        if "traffic" not in stage:
            raise where.error("needs a traffic", f"{path}.traffic")
        traffic = _number(stage["traffic"], f"{path}.traffic", where, low=0, high=1)
        if stages and traffic <= stages[-1].traffic:
            raise where.error(
                f"stages must increase: {traffic:g} after {stages[-1].traffic:g}", f"{path}.traffic"
            )
        hours = stage.get("min_hours")
        units = stage.get("min_units")
        last = i == len(raw_stages) - 1
        if hours is None and units is None and not last:
            raise where.error("give min_hours and/or min_units", path)
        stages.append(
            RampStage(
                traffic=traffic,
                min_hours=None
                if hours is None
                else _number(hours, f"{path}.min_hours", where, low=0, high=1e6),
                min_units=None if units is None else _count(units, f"{path}.min_units", where),
            )
        )
    return RampPlan(tuple(stages))


def _safety(
    value: Any, where: _Where, metrics: MetricsSpec | None, experiment: Experiment
) -> SafetyPolicy:
    section = _table(value, "safety", _SAFETY_KEYS, where)
    declared = [] if metrics is None else [m.name for m in metrics.guardrails]
    names = section.get("guardrails", declared)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise where.error("must be a list of guardrail metric names", "safety.guardrails")
    for i, name in enumerate(names):
        if name not in declared:
            raise where.error(
                f"{name!r} is not a guardrail in metrics.guardrails "
                f"({', '.join(declared) or 'none declared'})",
                f"safety.guardrails[{i}]",
            )
    if not names:
        raise where.error("names no guardrail: declare metrics.guardrails", "safety.guardrails")
    rollback = section.get("rollback_variant", experiment.control.name)
    _choice(rollback, "safety.rollback_variant", where, experiment.variant_names)
    return SafetyPolicy(
        guardrails=tuple(names),
        alpha=_number(section.get("alpha", 0.05), "safety.alpha", where, low=0, high=0.499),
        rollback_variant=rollback,
        action=_choice(section.get("action", "automatic"), "safety.action", where, POLICIES),
        tau_relative=_number(
            section.get("tau_relative", 0.10), "safety.tau_relative", where, low=0, high=10
        ),
    )


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class AnalysisInputs:
    """What an analysis of the experiment reads from its spec (flags override each part).

    ``metrics`` carries every metric with its role (guardrails included, role
    ``guardrail``); ``spec_version`` is the content hash the analysis states it used.
    """

    metrics: tuple[Metric, ...] | None
    method: Method
    alpha: float
    correction: Correction
    cuped: bool
    business: BusinessSpec | None
    spec_version: str
    source: Source | None = None

    @property
    def guardrails(self) -> tuple[Metric, ...]:
        return tuple(m for m in self.metrics or () if m.role == "guardrail")

    def analyze_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`abkit.analysis.analyze.analyze` (after ``db, key``)."""
        return {
            "metrics": None if self.metrics is None else list(self.metrics),
            "method": self.method,
            "alpha": self.alpha,
            "correction": self.correction,
            "cuped": self.cuped,
            "business": None if self.business is None else self.business.to_dict(),
            "spec_version": self.spec_version,
            "source": self.source,
        }


def resolve_analysis_inputs(spec: ExperimentSpec, **overrides: Any) -> AnalysisInputs:
    """The analysis inputs declared by ``spec``; keyword ``overrides`` (flags) win.

    Every entry point (``abkit analyze``, ``abkit report``, the notebooks, the demo, the
    controller) calls this, so one experiment gives one verdict whichever reads it.
    """
    unknown = set(overrides) - {
        "metrics",
        "method",
        "alpha",
        "correction",
        "cuped",
        "business",
        "source",
    }
    if unknown:
        raise TypeError(f"unknown override(s): {', '.join(sorted(unknown))}")
    inputs = AnalysisInputs(
        metrics=None if spec.metrics is None else spec.metrics.all,
        method=spec.readout.method,
        alpha=spec.readout.alpha,
        correction=spec.readout.correction,
        cuped=spec.readout.cuped,
        business=spec.business,
        spec_version=spec.version,
        source=spec.source,
    )
    given = {k: v for k, v in overrides.items() if v is not None}
    if "metrics" in given:
        given["metrics"] = tuple(given["metrics"])
    if "business" in given and isinstance(given["business"], Mapping):
        given["business"] = BusinessSpec(**given["business"])
    return replace(inputs, **given)
