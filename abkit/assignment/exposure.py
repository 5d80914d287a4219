"""Exposure records (ARCHITECTURE.md Contract 1) and the exposure hooks services register.

A hook is any callable taking one :class:`ExposureRecord`; it is called once per enrolled
assignment (``assign(..., expose=True)``, the default). Hooks run synchronously in the
service's request path, so they should enqueue, not do I/O. A hook that raises never
breaks ``assign``: the error is counted (:func:`exposure_hook_errors`) and logged on the
``abkit.assignment.exposure`` logger (the first 10 failures of each hook, then every
1000th, so a broken logger cannot flood the service's logs).
"""

from __future__ import annotations

from _thread import allocate_lock
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from time import time_ns
from types import MappingProxyType
from typing import Any

from abkit.assignment import hashing
from abkit.assignment.config import _EPOCH, to_us

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


@dataclass(frozen=True)
class ExposureRecord:
    """One exposure of a unit to a variant; ``to_dict()`` is an ingestible exposure row."""

    event_id: str
    experiment: str
    unit_id: str
    variant: str
    timestamp: datetime
    attributes: Mapping[str, str | int | float | bool] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        ts = self.timestamp
        if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
            raise ValueError("ExposureRecord.timestamp must be a timezone-aware datetime")
        object.__setattr__(self, "timestamp", ts.astimezone(timezone.utc))
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
        """Build a record with its deterministic ``event_id`` (now, if no timestamp)."""
        if timestamp is None:
            # one clock read, exact integer microseconds; cheaper than datetime.now()
            us = time_ns() // 1000
            ts = _EPOCH + timedelta(microseconds=us)
        else:
            if timestamp.tzinfo is None or timestamp.utcoffset() is None:
                raise ValueError("exposure timestamps must be timezone-aware")
            ts = timestamp.astimezone(timezone.utc)
            us = to_us(ts)
        record = object.__new__(cls)
        # Fields are set directly (they are already validated and normalised): this runs
        # once per enrolled request when a hook is registered, so it is kept lean.
        record.__dict__.update(
            event_id=hashing.event_id(experiment, unit_id, variant, us),
            experiment=experiment,
            unit_id=unit_id,
            variant=variant,
            timestamp=ts,
            attributes=_EMPTY if not attributes else MappingProxyType(_clean(attributes)),
        )
        return record

    @property
    def timestamp_us(self) -> int:
        return to_us(self.timestamp)

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
    return callback


def remove_exposure_hook(callback: ExposureHook) -> bool:
    """Unregister ``callback``; returns whether it was registered."""
    with _LOCK:
        try:
            _HOOKS.remove(callback)
        except ValueError:
            return False
        return True


def clear_exposure_hooks() -> None:
    with _LOCK:
        _HOOKS.clear()


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
