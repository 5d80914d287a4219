"""Experiment configuration: frozen, validated on construction, JSON round-trippable.

``Experiment.to_dict()`` / ``Experiment.from_dict()`` are ARCHITECTURE.md Contract 5 (the
store snapshots the registry with them). Construction also compiles a private, immutable
evaluation plan (integer thresholds, key prefix, compiled targeting) so that
:func:`abkit.assignment.assign.assign` does no per-call parsing.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from abkit.assignment import hashing
from abkit.assignment.targeting import Predicate, compile_rule, freeze, thaw
from abkit.errors import ConfigError
from abkit.timeutil import to_us

STATUSES = ("draft", "running", "paused", "stopped")
WEIGHT_TOLERANCE = 1e-9  # |sum(weights) - 1| allowed (binary64 sums of decimals)


def _err(message: str, field_name: str | None = None, key: str | None = None) -> ConfigError:
    prefix = f"experiment {key!r}: " if key else ""
    return ConfigError(prefix + message, field=field_name)


def _fraction(value: Any, name: str, key: str | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _err(f"{name} must be a number in [0, 1], got {value!r}", name, key)
    try:
        value = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise _err(f"{name} must be in [0, 1], got an integer too large", name, key) from None
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise _err(f"{name} must be in [0, 1], got {value!r}", name, key)
    return value


def _name(value: Any, what: str, key: str | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _err(f"{what} must be a non-empty string, got {value!r}", what, key)
    if hashing.SEPARATOR in value:
        raise _err(f"{what} must not contain the unit separator U+001F", what, key)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _err(f"{what} is not valid Unicode (lone surrogate)", what, key) from None
    return value


def parse_time(value: Any, field_name: str, key: str | None = None) -> datetime | None:
    """A timezone-aware UTC datetime from a datetime or an ISO-8601 string (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):  # Python 3.10's fromisoformat does not accept "Z"
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise _err(
                f"{field_name} {value!r} is not an ISO-8601 date-time (e.g. 2026-01-31T09:00:00Z)",
                field_name,
                key,
            ) from None
    if not isinstance(value, datetime):
        raise _err(f"{field_name} must be an ISO-8601 date-time, got {value!r}", field_name, key)
    if value.tzinfo is None or value.utcoffset() is None:
        raise _err(
            f"{field_name} {value.isoformat()} has no UTC offset; write e.g. "
            f"{value.isoformat()}Z so it means the same instant everywhere",
            field_name,
            key,
        )
    return value.astimezone(timezone.utc)


def check_fields(data: Mapping[str, Any], allowed: Sequence[str], what: str, key: str | None):
    unknown = [k for k in data if k not in allowed]
    if unknown:
        import difflib

        bad = unknown[0]
        close = difflib.get_close_matches(str(bad), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _err(
            f"unknown field {bad!r} in {what}{hint}; allowed: {', '.join(allowed)}", str(bad), key
        )


@dataclass(frozen=True)
class Variant:
    """One arm: a name, its traffic weight (None = equal split) and a JSON payload."""

    name: str
    weight: float | None = None
    payload: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _name(self.name, "variant name", None)
        if self.weight is not None:
            object.__setattr__(self, "weight", _fraction(self.weight, "weight", None))
        payload = self.payload if self.payload is not None else {}
        if not isinstance(payload, Mapping):
            raise _err(f"variant {self.name!r}: payload must be a table/object", "payload")
        import json

        try:
            # A payload is served to services and stored as JSON: it must survive JSON.
            json.dumps(dict(payload), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise _err(
                f"variant {self.name!r}: payload is not JSON-safe: {exc}", "payload"
            ) from None
        object.__setattr__(self, "payload", MappingProxyType(copy.deepcopy(dict(payload))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weight": self.weight,
            "payload": copy.deepcopy(dict(self.payload)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str, key: str | None = None) -> Variant:
        if isinstance(data, str):
            return cls(name=data)
        if not isinstance(data, Mapping):
            raise _err(f"a variant must be a table/object or a name, got {data!r}", "variants", key)
        check_fields(data, ("name", "weight", "payload"), "variant", key)
        if "name" not in data:
            raise _err("a variant needs a 'name'", "name", key)
        return cls(name=data["name"], weight=data.get("weight"), payload=data.get("payload") or {})


@dataclass(frozen=True)
class Namespace:
    """Slice ``[start, end)`` of a namespace: experiments in one namespace with disjoint
    slices are mutually exclusive (a unit is in at most one of them)."""

    name: str
    start: float = 0.0
    end: float = 1.0

    def __post_init__(self) -> None:
        _name(self.name, "namespace name", None)
        s = _fraction(self.start, "namespace.start", None)
        e = _fraction(self.end, "namespace.end", None)
        if not s < e:
            raise _err(f"namespace {self.name!r}: start {s} must be below end {e}", "namespace")
        object.__setattr__(self, "start", s)
        object.__setattr__(self, "end", e)

    @property
    def range(self) -> tuple[int, int]:
        """Integer hash range ``[lo, hi)`` of the slice."""
        return hashing.threshold(self.start), hashing.threshold(self.end)

    def overlaps(self, other: Namespace) -> bool:
        (a, b), (c, d) = self.range, other.range
        return self.name == other.name and a < d and c < b

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class Holdout:
    """A global holdout: ``fraction`` of all units that no experiment enrolls."""

    name: str
    fraction: float

    def __post_init__(self) -> None:
        _name(self.name, "holdout name", None)
        f = _fraction(self.fraction, "holdout.fraction", None)
        if f >= 1.0:
            raise _err("holdout.fraction must be below 1 (a full holdout runs nothing)", "holdout")
        object.__setattr__(self, "fraction", f)

    def contains(self, unit_id: str) -> bool:
        return hashing.holdout_hash(self.name, unit_id) < hashing.threshold(self.fraction)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "fraction": self.fraction}


_EXPERIMENT_FIELDS = (
    "key",
    "variants",
    "traffic",
    "salt",
    "status",
    "winner",
    "start",
    "end",
    "targeting",
    "forced",
    "namespace",
    "holdout",
    "description",
    "hypothesis",
    "owner",
    "tags",
)


@dataclass(frozen=True)
class Experiment:
    """An experiment's assignment configuration (see ``docs/assignment-spec.md``).

    ``variants[0]`` is the control: units not enrolled are served it, or the declared
    ``winner`` once the experiment is stopped or past its ``end``. ``salt`` defaults to the
    key; changing it reshuffles every unit (``abkit assign diff`` shows by how much).
    """

    key: str
    variants: tuple[Variant, ...]
    traffic: float = 1.0
    salt: str | None = None
    status: str = "running"
    winner: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    targeting: Mapping[str, Any] | None = field(default=None, hash=False)
    forced: Mapping[str, str] = field(default_factory=dict, hash=False)
    namespace: Namespace | None = None
    holdout: Holdout | None = None
    description: str = ""
    hypothesis: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()
    _plan: _Plan = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        key = _name(self.key, "key", None)
        set_ = object.__setattr__
        if isinstance(self.variants, (str, bytes)) or not isinstance(self.variants, Sequence):
            raise _err("variants must be a list", "variants", key)
        variants = tuple(
            v if isinstance(v, Variant) else _wrap(Variant.from_dict, v, key) for v in self.variants
        )
        if len(variants) < 2:
            raise _err("needs at least two variants (the first is the control)", "variants", key)
        names = [v.name for v in variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise _err(f"duplicate variant names {dupes}", "variants", key)
        given = [v.weight for v in variants]
        weights: list[float] = [w for w in given if w is not None]
        if not weights:
            weights = [1.0 / len(variants)] * len(variants)
        elif len(weights) < len(given):
            raise _err("give a weight to every variant or to none (equal split)", "weight", key)
        else:
            total = math.fsum(weights)
            if abs(total - 1.0) > WEIGHT_TOLERANCE:
                raise _err(
                    f"variant weights sum to {total:.12g}, they must sum to 1 "
                    f"(within {WEIGHT_TOLERANCE:g})",
                    "weight",
                    key,
                )
        set_(self, "variants", variants)
        set_(self, "traffic", _fraction(self.traffic, "traffic", key))
        set_(self, "salt", key if self.salt is None else _name(self.salt, "salt", key))
        if self.status not in STATUSES:
            raise _err(f"status {self.status!r} is not one of {', '.join(STATUSES)}", "status", key)
        if self.winner is not None and self.winner not in names:
            raise _err(
                f"winner {self.winner!r} is not a variant ({', '.join(names)})", "winner", key
            )
        start = parse_time(self.start, "start", key)
        end = parse_time(self.end, "end", key)
        if start is not None and end is not None and not start < end:
            raise _err(f"start {start.isoformat()} is not before end {end.isoformat()}", "end", key)
        set_(self, "start", start)
        set_(self, "end", end)
        predicate = None
        if self.targeting is not None:
            try:
                predicate = compile_rule(self.targeting)
            except ConfigError as exc:
                raise _err(exc.message, "targeting", key) from None
            set_(self, "targeting", freeze(self.targeting))
        forced = self.forced or {}
        if not isinstance(forced, Mapping):
            raise _err("forced must map unit ids to variant names", "forced", key)
        for unit, variant in forced.items():
            if not isinstance(unit, str) or variant not in names:
                raise _err(
                    f"forced {unit!r} -> {variant!r}: not a unit id -> variant name "
                    f"({', '.join(names)})",
                    "forced",
                    key,
                )
        set_(self, "forced", MappingProxyType(dict(forced)))
        if self.namespace is not None and not isinstance(self.namespace, Namespace):
            set_(self, "namespace", _wrap(_namespace_from, self.namespace, key))
        if self.holdout is not None and not isinstance(self.holdout, Holdout):
            set_(self, "holdout", _wrap(_holdout_from, self.holdout, key))
        for text in ("description", "hypothesis", "owner"):
            if not isinstance(getattr(self, text), str):
                raise _err(f"{text} must be a string", text, key)
        tags = self.tags
        if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
            raise _err("tags must be a list of strings", "tags", key)
        set_(self, "tags", tuple(tags))
        set_(self, "_plan", _Plan(self, weights, predicate))

    # -- convenience ---------------------------------------------------------------
    @property
    def variant_names(self) -> tuple[str, ...]:
        return self._plan.names

    @property
    def control(self) -> Variant:
        return self.variants[0]

    @property
    def weights(self) -> tuple[float, ...]:
        """Configured weights (equal split filled in)."""
        return self._plan.weights

    @property
    def effective_weights(self) -> tuple[float, ...]:
        """Exact shares of the 32-bit hash space per variant (use these for SRM tests)."""
        b = (0, *self._plan.bounds)
        return tuple((b[i + 1] - b[i]) / hashing.SCALE for i in range(len(b) - 1))

    def variant(self, name: str) -> Variant:
        return self.variants[self._plan.index[name]]

    # -- Contract 5 ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; ``Experiment.from_dict(e.to_dict()) == e``."""
        return {
            "key": self.key,
            "variants": [v.to_dict() for v in self.variants],
            "traffic": self.traffic,
            "salt": self.salt,
            "status": self.status,
            "winner": self.winner,
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "targeting": None if self.targeting is None else thaw(self.targeting),
            "forced": dict(self.forced),
            "namespace": None if self.namespace is None else self.namespace.to_dict(),
            "holdout": None if self.holdout is None else self.holdout.to_dict(),
            "description": self.description,
            "hypothesis": self.hypothesis,
            "owner": self.owner,
            "tags": list(self.tags),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        """Build from :meth:`to_dict` output or a registry entry (unknown fields are errors)."""
        if not isinstance(data, Mapping):
            raise _err(f"an experiment must be a table/object, got {type(data).__name__}")
        key = data.get("key")
        check_fields(data, _EXPERIMENT_FIELDS, "experiment", key if isinstance(key, str) else None)
        if "key" not in data:
            raise _err("an experiment needs a 'key'", "key")
        if "variants" not in data:
            raise _err("needs 'variants'", "variants", key)
        kwargs = dict(data)
        tags = kwargs.get("tags") or ()
        if isinstance(tags, str) or not isinstance(tags, (list, tuple)):
            raise _err("tags must be a list of strings", "tags", key)
        kwargs["tags"] = tuple(tags)
        kwargs["forced"] = kwargs.get("forced") or {}
        for text in ("description", "hypothesis", "owner"):
            kwargs[text] = kwargs.get(text) or ""
        return cls(**kwargs)


def _wrap(factory, value, key):
    try:
        return factory(value, key)
    except ConfigError as exc:
        if exc.message.startswith("experiment "):
            raise
        raise _err(exc.message, exc.location.field, key) from None


def _namespace_from(value: Any, key: str | None) -> Namespace:
    if isinstance(value, str):
        return Namespace(value)
    if not isinstance(value, Mapping):
        raise _err("namespace must be a name or {name, start, end}", "namespace", key)
    check_fields(value, ("name", "start", "end"), "namespace", key)
    return Namespace(value.get("name", ""), value.get("start", 0.0), value.get("end", 1.0))


def _holdout_from(value: Any, key: str | None) -> Holdout:
    if not isinstance(value, Mapping):
        raise _err("holdout must be {name, fraction}", "holdout", key)
    check_fields(value, ("name", "fraction"), "holdout", key)
    if "fraction" not in value or "name" not in value:
        raise _err("holdout needs 'name' and 'fraction'", "holdout", key)
    return Holdout(value["name"], value["fraction"])


class _Plan:
    """Precomputed, immutable evaluation data of one experiment (internal)."""

    __slots__ = (
        "__weakref__",
        "bounds",
        "end_us",
        "experiment",
        "exposed",
        "exposed_old",
        "fallback",
        "forced",
        "full_traffic",
        "holdout_prefix",
        "holdout_t",
        "index",
        "key",
        "names",
        "ns_hi",
        "ns_lo",
        "ns_prefix",
        "payloads",
        "predicate",
        "prefix",
        "simple",
        "split",
        "start_us",
        "status",
        "traffic_t",
        "weights",
    )

    def __init__(self, exp: Experiment, weights: list[float], predicate: Predicate | None):
        self.key = exp.key
        # the experiment this plan evaluates, without keeping it alive (plan <-> experiment)
        self.experiment = weakref.ref(exp)
        # units already exposed; an enrolled unit's variant is fixed within a plan
        # (abkit.assignment.exposure.expose_first)
        self.exposed: set[str] = set()
        self.exposed_old: set[str] = set()
        self.names = tuple(v.name for v in exp.variants)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.payloads = tuple(v.payload for v in exp.variants)
        self.weights = tuple(weights)
        self.bounds = hashing.variant_bounds(weights)
        # Two variants split at B[1] (0 disables the shortcut; B[1] == 0 means all-treatment,
        # which bisect handles).
        self.split = self.bounds[0] if len(self.bounds) == 2 else 0
        self.prefix = (exp.salt or exp.key) + hashing.SEPARATOR  # salt defaults to the key
        self.traffic_t = hashing.threshold(exp.traffic)
        self.full_traffic = self.traffic_t == hashing.SCALE
        self.status = exp.status
        # Served when not enrolled: the winner once stopped/ended, else the control.
        self.fallback = self.index[exp.winner] if exp.winner is not None else 0
        self.start_us = None if exp.start is None else to_us(exp.start)
        self.end_us = None if exp.end is None else to_us(exp.end)
        self.predicate = predicate
        self.forced = dict(exp.forced) or None
        ns = exp.namespace
        self.ns_prefix = None if ns is None else (ns.name + hashing.SEPARATOR).encode()
        self.ns_lo, self.ns_hi = (0, 0) if ns is None else ns.range
        ho = exp.holdout
        self.holdout_prefix = b"" if ho is None else (ho.name + hashing.SEPARATOR).encode()
        self.holdout_t = 0 if ho is None else hashing.threshold(ho.fraction)
        # The fast path of assign() handles exactly this case; everything else goes
        # through the general path (same decisions, more checks).
        self.simple = (
            exp.status == "running"
            and self.start_us is None
            and self.end_us is None
            and predicate is None
            and self.forced is None
            and ns is None
            and (ho is None or self.holdout_t == 0)
        )
