"""``assign`` (one unit, on the request path) and ``assign_many`` (bulk, same answers).

Decision order for a unit (the first that applies wins; ``docs/assignment-spec.md``):

1. invalid id (not a non-empty ``str`` or integer, or not UTF-8) -> fallback if over, ``invalid_unit``
2. status ``stopped``                                      -> fallback, ``stopped``
3. forced variant (QA overrides)                           -> forced variant, ``forced``
4. status ``draft`` / ``paused``                           -> control, ``draft`` / ``paused``
5. before ``start`` / at or after ``end``                  -> ``not_started`` / ``ended``
6. in the global holdout                                   -> ``holdout``
7. targeting rule false                                    -> ``not_targeted``
8. outside the experiment's namespace slice                -> ``namespace``
9. traffic hash >= traffic threshold                       -> ``outside_traffic``
10. otherwise enrolled: variant from the variant hash       -> ``in_experiment=True``

"Fallback" is the control, or the declared winner once stopped or ended, so a service
always has a variant to serve. Only step 10 sets ``in_experiment`` (and fires hooks).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from operator import index as _index
from time import time_ns
from types import MappingProxyType
from typing import Any, NamedTuple

from mmh3 import hash as _h

from abkit.assignment import exposure as _exposure
from abkit.assignment.config import Experiment, _Plan
from abkit.assignment.hashing import SEED_HOLDOUT, SEED_NAMESPACE, SEED_TRAFFIC, SEED_VARIANT
from abkit.timeutil import to_us

_HOOKS = _exposure._HOOKS  # the same list object; truthiness is checked per call
_expose_first = _exposure.expose_first
_new = tuple.__new__
_NO_ATTRS: Mapping[str, Any] = MappingProxyType({})


class Reason:
    """Why a unit is not enrolled (``Assignment.reason``); None when enrolled."""

    INVALID_UNIT = "invalid_unit"
    FORCED = "forced"
    STOPPED = "stopped"
    DRAFT = "draft"
    PAUSED = "paused"
    NOT_STARTED = "not_started"
    ENDED = "ended"
    HOLDOUT = "holdout"
    NOT_TARGETED = "not_targeted"
    NAMESPACE = "namespace"
    OUTSIDE_TRAFFIC = "outside_traffic"

    ALL = (
        "invalid_unit",
        "forced",
        "stopped",
        "draft",
        "paused",
        "not_started",
        "ended",
        "holdout",
        "not_targeted",
        "namespace",
        "outside_traffic",
    )


class Assignment(NamedTuple):
    """The answer for one unit. Immutable; a named tuple because ``assign`` builds one per
    request and a tuple costs a fifth of a frozen dataclass to construct.

    ``bucket`` is the unit's 32-bit variant hash when enrolled (None otherwise).
    """

    experiment: str
    unit_id: str
    variant: str
    payload: Mapping[str, Any]
    in_experiment: bool
    bucket: int | None
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (what ``abkit assign`` prints)."""
        d = self._asdict()
        d["payload"] = dict(self.payload)
        return d


def assign(
    experiment: Experiment,
    unit_id: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
    expose: bool = True,
) -> Assignment:
    """Assign ``unit_id`` to a variant of ``experiment``; never raises for a bad unit id.

    ``attributes`` feed targeting and the exposure record; ``now`` (timezone-aware) is
    the evaluation time for start/end and the exposure timestamp (default: the clock).
    ``expose=False`` skips the exposure hooks (e.g. when only peeking at the variant).
    """
    plan = experiment._plan
    # Fast path: a plain running experiment, the clock's time and an ASCII id (ASCII also
    # rules out lone surrogates, on which mmh3 5.3 crashes the interpreter).
    if plan.simple and now is None and type(unit_id) is str and unit_id.isascii() and unit_id:
        key = plan.prefix + unit_id
        if plan.full_traffic or _h(key, SEED_TRAFFIC, False) < plan.traffic_t:
            h = _h(key, SEED_VARIANT, False)
            # two variants (the common case): one comparison instead of a bisect call
            i = (h >= plan.split) if plan.split else bisect_right(plan.bounds, h)
            name = plan.names[i]
            # a unit already exposed (to this variant: fixed within a plan): one set
            # membership test, no call
            if _HOOKS and expose and unit_id not in plan.exposed:
                _expose_first(plan, unit_id, name, now, attributes)
            return _new(Assignment, (plan.key, unit_id, name, plan.payloads[i], True, h, None))
        return _new(
            Assignment,
            (plan.key, unit_id, plan.names[0], plan.payloads[0], False, None, "outside_traffic"),
        )
    now_us = None if now is None else _now_us(now)
    uid, i, bucket, reason = _decide(plan, unit_id, attributes, now_us, True)
    if reason is None and _HOOKS and expose:
        _expose_first(plan, uid, plan.names[i], now, attributes)
    return _new(
        Assignment, (plan.key, uid, plan.names[i], plan.payloads[i], reason is None, bucket, reason)
    )


def _now_us(now: datetime) -> int:
    # A naive or non-datetime ``now`` is a programming error in the caller, not bad request
    # data: it fails loudly on the first call rather than guessing a time zone.
    if not isinstance(now, datetime):
        raise TypeError(f"now must be a timezone-aware datetime, got {type(now).__name__}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime (e.g. datetime.now(timezone.utc))")
    return to_us(now)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _targeted(predicate: Callable[[Mapping[str, Any]], bool], attributes: Any) -> bool:
    """The targeting rule on ``attributes``; an error counts as not targeted (fail closed).

    Rules only compare, but attribute values come from callers: a non-mapping, or a value
    whose comparison raises (a numpy array, an object with a broken ``__eq__``), must cost
    the unit its enrolment, not the service its request.
    """
    try:
        return bool(predicate(attributes or _NO_ATTRS))
    except Exception:
        return False


def _normalise(unit_id: Any) -> tuple[str, bytes | None]:
    """(display id, UTF-8 bytes) of a unit id; bytes None when the id is invalid."""
    if type(unit_id) is not str:
        if isinstance(unit_id, str):
            # the text itself, as assign_many's fast path and the spec hash it: a
            # str-mixin Enum's str() is "Plan.U", and an overridden __str__ may raise
            unit_id = str.__str__(unit_id)
        elif isinstance(unit_id, bool) or (
            type(unit_id).__module__ == "numpy" and type(unit_id).__name__ in ("bool", "bool_")
        ):
            return repr(unit_id), None  # True is not the unit "1"
        else:
            try:
                # Integer ids (int, numpy.int64 from a DataFrame column, anything with
                # __index__) hash as their decimal string; floats and the rest are invalid.
                unit_id = str(_index(unit_id))
            except Exception:  # __index__ missing or broken: an answer, not an exception
                return ("" if unit_id is None else _safe_repr(unit_id)), None
    if not unit_id:
        return unit_id, None
    try:
        return unit_id, unit_id.encode("utf-8")
    except UnicodeEncodeError:
        return unit_id.encode("utf-8", "backslashreplace").decode("ascii"), None


def _served_to_invalid(plan: _Plan, now_us: int | None) -> int:
    """What a unit without a usable id is served: what any unit that is not hashed gets at
    this time (the fallback once stopped or past ``end``, else the control). Logged-out
    traffic with an empty id must not fall back to the old model after the end date."""
    if plan.status == "stopped":
        return plan.fallback
    if plan.status == "running" and plan.end_us is not None:
        t = time_ns() // 1000 if now_us is None else now_us
        if t >= plan.end_us:
            return plan.fallback
    return 0


def _decide(
    plan: _Plan,
    unit_id: Any,
    attributes: Mapping[str, Any] | None,
    now_us: int | None,
    check_targeting: bool,
) -> tuple[str, int, int | None, str | None]:
    """The general decision procedure: (unit id, variant index, bucket, reason)."""
    uid, ub = _normalise(unit_id)
    if ub is None:
        return uid, _served_to_invalid(plan, now_us), None, Reason.INVALID_UNIT
    status = plan.status
    if status == "stopped":
        return uid, plan.fallback, None, Reason.STOPPED
    forced = plan.forced
    if forced is not None and uid in forced:
        return uid, plan.index[forced[uid]], None, Reason.FORCED
    if status != "running":
        return uid, 0, None, status  # "draft" or "paused"
    if plan.start_us is not None or plan.end_us is not None:
        t = time_ns() // 1000 if now_us is None else now_us
        if plan.start_us is not None and t < plan.start_us:
            return uid, 0, None, Reason.NOT_STARTED
        if plan.end_us is not None and t >= plan.end_us:
            return uid, plan.fallback, None, Reason.ENDED
    if plan.holdout_t and _h(plan.holdout_prefix + ub, SEED_HOLDOUT, False) < plan.holdout_t:
        return uid, 0, None, Reason.HOLDOUT
    if check_targeting and plan.predicate is not None and not _targeted(plan.predicate, attributes):
        return uid, 0, None, Reason.NOT_TARGETED
    if plan.ns_prefix is not None:
        hn = _h(plan.ns_prefix + ub, SEED_NAMESPACE, False)
        if not plan.ns_lo <= hn < plan.ns_hi:
            return uid, 0, None, Reason.NAMESPACE
    key = plan.prefix.encode() + ub
    if not plan.full_traffic and _h(key, SEED_TRAFFIC, False) >= plan.traffic_t:
        return uid, 0, None, Reason.OUTSIDE_TRAFFIC
    h = _h(key, SEED_VARIANT, False)
    return uid, bisect_right(plan.bounds, h), h, None


@dataclass(frozen=True)
class BulkAssignment:
    """Column-wise answers of :func:`assign_many` (row ``i`` equals ``assign(unit_ids[i])``).

    Columns are tuples, so a million answers cost five tuples, not a million objects.
    Indexing or iterating yields :class:`Assignment` rows built on demand.
    """

    experiment: Experiment
    unit_ids: tuple[str, ...]
    variants: tuple[str, ...]
    in_experiment: tuple[bool, ...]
    buckets: tuple[int | None, ...]
    reasons: tuple[str | None, ...]

    def __len__(self) -> int:
        return len(self.unit_ids)

    def __getitem__(self, i: int) -> Assignment:
        exp = self.experiment
        variant = self.variants[i]
        return Assignment(
            exp.key,
            self.unit_ids[i],
            variant,
            exp.variant(variant).payload,
            self.in_experiment[i],
            self.buckets[i],
            self.reasons[i],
        )

    def __iter__(self) -> Iterator[Assignment]:
        return (self[i] for i in range(len(self)))

    def counts(self, enrolled_only: bool = True) -> dict[str, int]:
        """Units per variant (enrolled units only by default), in variant order."""
        out = dict.fromkeys(self.experiment.variant_names, 0)
        for v, e in zip(self.variants, self.in_experiment, strict=False):
            if e or not enrolled_only:
                out[v] += 1
        return out

    def reason_counts(self) -> dict[str | None, int]:
        out: dict[str | None, int] = {}
        for r in self.reasons:
            out[r] = out.get(r, 0) + 1
        return out

    def to_dicts(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self]


def assign_many(
    experiment: Experiment,
    unit_ids: Iterable[Any],
    attributes: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None,
    *,
    now: datetime | None = None,
    expose: bool = False,
    check_targeting: bool = True,
) -> BulkAssignment:
    """Assign many units at once with exactly :func:`assign`'s answers.

    ``attributes`` is one mapping for every unit or a sequence parallel to ``unit_ids``.
    Exposure hooks are not called unless ``expose=True`` (a backfill is not an exposure).
    ``check_targeting=False`` treats every unit as targeted (used by the config diff when
    no attributes are available).
    """
    plan = experiment._plan
    ids = unit_ids if isinstance(unit_ids, list) else list(unit_ids)
    now_us = None if now is None else _now_us(now)
    # one mapping for every unit (repeated), or one per unit
    per_unit: list[Mapping[str, Any] | None] | None = None
    if attributes is not None and not isinstance(attributes, Mapping):
        per_unit = list(attributes)
        if len(per_unit) != len(ids):
            raise ValueError(f"attributes has {len(per_unit)} entries for {len(ids)} unit ids")
    shared = attributes if isinstance(attributes, Mapping) else None
    names = plan.names
    if plan.simple and _all_plain_strings(ids):
        uids, variants, enrolled, buckets, reasons = _many_fast(plan, ids)
    else:
        cols: tuple[list, list, list, list] = ([], [], [], [])
        a_uid, a_idx, a_bucket, a_reason = (c.append for c in cols)
        decide = _decide
        attrs_iter: Iterable[Mapping[str, Any] | None] = (
            per_unit if per_unit is not None else repeat(shared)
        )
        for uid, attrs in zip(ids, attrs_iter, strict=False):
            u, i, b, r = decide(plan, uid, attrs, now_us, check_targeting)
            a_uid(u)
            a_idx(i)
            a_bucket(b)
            a_reason(r)
        uids, idx, bucket_list, reason_list = cols
        variants = tuple(map(names.__getitem__, idx))
        enrolled = tuple(r is None for r in reason_list)
        buckets, reasons = tuple(bucket_list), tuple(reason_list)
    bulk = BulkAssignment(experiment, tuple(uids), variants, enrolled, buckets, reasons)
    if expose and _HOOKS:
        for uid, v, e, attrs in zip(
            bulk.unit_ids,
            variants,
            enrolled,
            per_unit if per_unit is not None else repeat(shared),
            strict=False,
        ):
            if e:
                _expose_first(plan, uid, v, now, attrs)
    return bulk


def _all_plain_strings(ids: list) -> bool:
    """True when every id is a non-empty str without lone surrogates (checked in bulk)."""
    try:
        # join raises TypeError on a non-str; strict UTF-8 rejects any surrogate code point
        "".join(ids).encode("utf-8")
    except (TypeError, UnicodeEncodeError):
        return False
    return "" not in ids


def _many_fast(plan: _Plan, ids: list[str]) -> tuple:
    """Bulk path for plain running experiments: list comprehensions over C calls and no
    per-unit objects. Same arithmetic as the spec (and as ``assign``'s fast path)."""
    prefix = plan.prefix
    h = _h
    n = len(ids)
    names = plan.names
    split = plan.split
    if plan.full_traffic:
        every = [h(prefix + u, SEED_VARIANT, False) for u in ids]
        if split:
            c, t = names
            chosen = [t if x >= split else c for x in every]
        else:
            chosen = list(map(names.__getitem__, map(bisect_right, repeat(plan.bounds, n), every)))
        return ids, tuple(chosen), (True,) * n, tuple(every), (None,) * n
    thr = plan.traffic_t
    inside = [h(prefix + u, SEED_TRAFFIC, False) < thr for u in ids]
    # Only enrolled units need the variant hash: a 5% rollout hashes 1.05 times per id, not 2.
    hv: list[int | None] = [
        h(prefix + u, SEED_VARIANT, False) if ok else None
        for u, ok in zip(ids, inside, strict=True)
    ]
    control = names[0]
    if split:
        c, t = names
        variants = [c if x is None or x < split else t for x in hv]
    else:
        bounds = plan.bounds
        variants = [control if x is None else names[bisect_right(bounds, x)] for x in hv]
    out = Reason.OUTSIDE_TRAFFIC
    reasons = tuple([None if ok else out for ok in inside])
    return ids, tuple(variants), tuple(inside), tuple(hv), reasons
