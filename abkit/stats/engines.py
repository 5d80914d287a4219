"""Readout engines: a typed protocol and the registry keyed by :data:`abkit.vocabulary.Method`.

:func:`abkit.stats.readout.compare` estimates the difference (:mod:`abkit.stats.estimators`),
builds the fixed-horizon readout of it (:func:`abkit.stats.fixed.compare_difference`) and
hands both to the engine registered for ``method``. An engine is any object with

* ``method``: its name, a value of :data:`abkit.vocabulary.Method`;
* ``options``: the keyword options it accepts (``compare(..., **options)``; anything else
  is a ``TypeError`` before any work is done);
* ``read(difference, base, options) -> LiftResult``: typically
  ``base.with_engine(own_result, method=self.method, label="...")``, where ``own_result`` is
  the engine's frozen result dataclass satisfying :class:`abkit.stats.lift.EngineResult`.

Adding a method is one module defining the engine and one line in :data:`_BUILT_IN` below
(plus its name in ``abkit.vocabulary.Method``). Engine modules never import this module, so
the registry can import them without a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from abkit.stats.bayesian import BayesianEngine
from abkit.stats.confseq import ConfSeqEngine
from abkit.stats.estimators import Difference
from abkit.stats.exact import ExactEngine
from abkit.stats.fixed import FixedEngine
from abkit.stats.lift import LiftResult
from abkit.stats.sequential import SequentialEngine
from abkit.vocabulary import METHODS

__all__ = ["ReadoutEngine", "engine_methods", "get_engine", "register_engine"]


class ReadoutEngine(Protocol):
    """What :func:`abkit.stats.readout.compare` needs from a readout engine."""

    @property
    def method(self) -> str: ...

    @property
    def options(self) -> frozenset[str]: ...

    def read(
        self, difference: Difference, base: LiftResult, options: Mapping[str, Any]
    ) -> LiftResult: ...


_BUILT_IN: tuple[ReadoutEngine, ...] = (
    FixedEngine(),
    SequentialEngine(),
    BayesianEngine(),
    ConfSeqEngine(),
    ExactEngine(),
)
_ENGINES: dict[str, ReadoutEngine] = {}


def register_engine(engine: ReadoutEngine, *, replace: bool = False) -> None:
    """Make ``engine`` the readout for ``engine.method``.

    Its name must be in ``abkit.vocabulary.METHODS`` (the one list the CLI and the
    configuration files validate against); registering a name twice needs ``replace=True``.
    """
    if engine.method not in METHODS:
        raise ValueError(
            f"readout method {engine.method!r} is not in abkit.vocabulary.METHODS {METHODS}"
        )
    if engine.method in _ENGINES and not replace:
        raise ValueError(f"a readout engine for {engine.method!r} is already registered")
    _ENGINES[engine.method] = engine


def get_engine(method: str) -> ReadoutEngine:
    """The engine registered for ``method``; ``ValueError`` naming the known methods."""
    try:
        return _ENGINES[method]
    except (KeyError, TypeError):
        raise ValueError(f"method must be one of {engine_methods()}, got {method!r}") from None


def engine_methods() -> tuple[str, ...]:
    """The registered methods, in registration order."""
    return tuple(_ENGINES)


for _engine in _BUILT_IN:
    register_engine(_engine)
