"""Exposure records (ARCHITECTURE.md Contract 1) and the exposure hooks services register.

A hook is any callable taking one :class:`ExposureRecord`; it is called for an enrolled
assignment (``assign(..., expose=True)``, the default) the first time this process serves
that (experiment, unit, variant), like the leading SDKs: a unit seen on every page view
is one exposure, not thousands. The memory of what was seen is bounded: each experiment
version remembers up to :func:`configure_exposure_dedup` units (100,000 by default; two
generations that keep the most recently seen, an approximate LRU), and everything is
forgotten whenever hooks are added or removed, so a new hook (a new ``Tracker``) receives
every unit again. An evicted unit, or every unit after a new version of the experiment is
loaded, fires again: a repeated exposure, which the analysis treats as the same unit; a
first exposure is never skipped. ``configure_exposure_dedup(0)`` fires on every
assignment.

Hooks run synchronously in the service's request path, so they should enqueue, not do
I/O. A hook that raises never breaks ``assign``: the error is counted
(:func:`exposure_hook_errors`) and logged on the ``abkit.assignment.exposure`` logger
(the first 10 failures of each hook, then every 1000th, so a broken logger cannot flood
the service's logs).
"""

from __future__ import annotations

import weakref
from _thread import allocate_lock
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from time import time_ns
from types import MappingProxyType
from typing import Any, Protocol

from abkit.assignment import hashing
from abkit.assignment.config import Experiment
from abkit.timeutil import EPOCH, to_us

LOGGER_NAME = __name__

ExposureHook = Callable[["ExposureRecord"], Any]

# Hooks are read on every enrolled assignment and changed rarely: readers iterate a
# snapshot, writers replace the list content under a lock.
_HOOKS: list[ExposureHook] = []
# _thread's lock is threading.Lock without importing threading (~0.5 ms at import time)
_LOCK = allocate_lock()
_ERRORS: dict[int, int] = {}
_ERROR_TOTAL = [0]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class _Remembers(Protocol):
    """What :func:`expose_first` needs of an evaluation plan (``config._Plan``)."""

    key: str
    exposed: set[str]
    exposed_old: set[str]
    experiment: weakref.ref[Experiment]


DEFAULT_DEDUP_CAPACITY = 100_000
# Units remembered per experiment plan (0: no de-duplication); see configure_exposure_dedup.
_CAPACITY = [DEFAULT_DEDUP_CAPACITY]
# Plans currently remembering exposures, to forget them all when the hooks change.
_REMEMBERING: weakref.WeakSet[_Remembers] = weakref.WeakSet()
# Experiment key -> the experiment (weakly) of its latest first exposure in this process.
_SERVED: dict[str, weakref.ref[Experiment]] = {}


def served_experiment(key: str) -> Experiment | None:
    """The :class:`~abkit.assignment.config.Experiment` this process last exposed a unit
    of under ``key`` (None when none, or no longer alive): what a ``Tracker`` registers in
    the store when the store does not know ``key``."""
    ref = _SERVED.get(key)
    return None if ref is None else ref()


def configure_exposure_dedup(capacity: int = DEFAULT_DEDUP_CAPACITY) -> None:
    """Remember up to ``capacity`` units per experiment to fire hooks once for each
    (unit, variant); 0 fires hooks on every enrolled assignment."""
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
        raise ValueError("capacity must be a non-negative integer")
    with _LOCK:
        _CAPACITY[0] = capacity
        _forget_exposures()


def _forget_exposures() -> None:
    """Called with _LOCK held whenever the hooks change: a new hook has seen nothing."""
    for plan in list(_REMEMBERING):
        plan.exposed = set()
        plan.exposed_old = set()
    _REMEMBERING.clear()


def expose_first(
    plan: _Remembers,
    unit_id: str,
    variant: str,
    now: datetime | None,
    attributes: Mapping[str, Any] | None,
) -> None:
    """Emit the exposure unless ``plan`` remembers ``unit_id``.

    Within one plan (one experiment version) an enrolled unit always gets the same variant
    (its hash against fixed bounds), so remembering the unit is remembering the (unit,
    variant) pair: a set, whose membership test is one bytecode on ``assign``'s fast path.
    Each plan keeps two sets used as generations: a unit is looked up in the young one,
    then the old one (and written back to the young one); when the young one holds half
    the capacity it becomes the old one and the previous old one is dropped. So a plan
    holds at most ``capacity`` units, and a unit seen within the last ``capacity / 2``
    distinct units is always remembered (an approximate LRU). ``assign``'s fast path checks
    the young set inline and calls this only on a miss. Set operations are atomic under the
    GIL; two threads rotating at once can only forget units (a repeated exposure), never
    skip a first one.
    """
    capacity = _CAPACITY[0]
    if capacity:
        young = plan.exposed
        if unit_id in young:
            return
        repeat = unit_id in plan.exposed_old
        young.add(unit_id)
        # registered on the first adds of a generation (not only the first: two threads
        # adding at once may see a length of 2 and neither a 1), so that a hook added
        # later makes this plan forget what it remembers
        if len(young) <= 64 and plan not in _REMEMBERING:
            _REMEMBERING.add(plan)
        if len(young) * 2 >= capacity:
            plan.exposed_old, plan.exposed = young, set()
        if repeat:
            return
    _SERVED[plan.key] = plan.experiment
    emit(plan.key, unit_id, variant, now, attributes)


@dataclass(frozen=True)
class ExposureRecord:
    """One exposure of a unit to a variant; ``to_dict()`` is an ingestible exposure row.

    The record holds what identifies the exposure (experiment, unit, variant, the time in
    integer microseconds since the epoch, attributes). ``event_id`` and ``timestamp`` are
    derived from them on first access: building a record runs in ``assign``'s request path
    for every first exposure while a hook is registered, and hashing the id and building a
    ``datetime`` there would take ~3 µs of the ~4 µs a record costs; a ``Tracker`` derives
    them in its background worker instead.
    """

    experiment: str
    unit_id: str
    variant: str
    timestamp_us: int
    attributes: Mapping[str, str | int | float | bool] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if isinstance(self.timestamp_us, bool) or not isinstance(self.timestamp_us, int):
            raise ValueError("ExposureRecord.timestamp_us must be an integer (µs since the epoch)")
        object.__setattr__(self, "attributes", MappingProxyType(_clean(self.attributes)))

    @classmethod
    def create(
        cls,
        experiment: str,
        unit_id: str,
        variant: str,
        timestamp: datetime | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> ExposureRecord:
        """Build a record (now, if no timestamp; a timestamp must be timezone-aware)."""
        if timestamp is None:
            us = time_ns() // 1000  # one clock read, exact integer microseconds
        elif timestamp.tzinfo is None or timestamp.utcoffset() is None:
            raise ValueError("exposure timestamps must be timezone-aware")
        else:
            us = to_us(timestamp)
        record = object.__new__(cls)
        # Fields are set directly (they are already validated and normalised): this runs
        # once per enrolled request when a hook is registered, so it is kept lean.
        record.__dict__.update(
            experiment=experiment,
            unit_id=unit_id,
            variant=variant,
            timestamp_us=us,
            attributes=_EMPTY if not attributes else MappingProxyType(_clean(attributes)),
        )
        return record

    @cached_property
    def event_id(self) -> str:
        """The deterministic exposure id (:func:`abkit.assignment.hashing.event_id`)."""
        return hashing.event_id(self.experiment, self.unit_id, self.variant, self.timestamp_us)

    @cached_property
    def timestamp(self) -> datetime:
        """When, as a timezone-aware UTC ``datetime``."""
        return EPOCH + timedelta(microseconds=self.timestamp_us)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "experiment": self.experiment,
            "unit_id": self.unit_id,
            "variant": self.variant,
            "timestamp": self.timestamp.isoformat(),
            "attributes": dict(self.attributes),
        }


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, str | int | float | bool]:
    """Contract 1 attributes are scalars: None is dropped, anything else becomes str."""
    out: dict[str, str | int | float | bool] = {}
    for k, v in (attributes or {}).items():
        if v is None:
            continue
        out[str(k)] = v if isinstance(v, (str, int, float, bool)) else str(v)
    return out


def add_exposure_hook(callback: ExposureHook) -> ExposureHook:
    """Register ``callback(record)``; returns it, so it also works as a decorator."""
    if not callable(callback):
        raise TypeError("an exposure hook must be callable")
    with _LOCK:
        if callback not in _HOOKS:
            _HOOKS.append(callback)
            _forget_exposures()
    return callback


def remove_exposure_hook(callback: ExposureHook) -> bool:
    """Unregister ``callback``; returns whether it was registered."""
    with _LOCK:
        try:
            _HOOKS.remove(callback)
        except ValueError:
            return False
        _forget_exposures()
        return True


def clear_exposure_hooks() -> None:
    with _LOCK:
        _HOOKS.clear()
        _forget_exposures()


def exposure_hooks() -> tuple[ExposureHook, ...]:
    return tuple(_HOOKS)


def exposure_hook_errors() -> int:
    """How many hook calls have raised since the process started."""
    return _ERROR_TOTAL[0]


def emit(
    experiment: str,
    unit_id: str,
    variant: str,
    now: datetime | None,
    attributes: Mapping[str, Any] | None,
) -> None:
    """Build the record and call every hook, isolating each hook's failures."""
    try:
        record = ExposureRecord.create(experiment, unit_id, variant, now, attributes)
    except Exception:  # never break assign(); a bad attribute must not cost a request
        _count_failure(None)
        return
    for hook in tuple(_HOOKS):
        try:
            hook(record)
        except Exception:
            _count_failure(hook)


def _count_failure(hook: ExposureHook | None) -> None:
    with _LOCK:
        _ERROR_TOTAL[0] += 1
        n = _ERRORS[id(hook)] = _ERRORS.get(id(hook), 0) + 1
    if n <= 10 or n % 1000 == 0:
        import logging  # imported on first failure: logging costs ~3 ms at import time

        logging.getLogger(LOGGER_NAME).exception(
            "abkit exposure hook %r failed (failure %d of this hook); assign() continues",
            hook,
            n,
        )
