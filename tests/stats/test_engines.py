"""The readout-engine registry (abkit.stats.engines): typed engines keyed by Method."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from abkit.results import Interval, ResultMixin
from abkit.stats.engines import engine_methods, get_engine, register_engine
from abkit.stats.estimators import Difference
from abkit.stats.lift import LiftResult
from abkit.stats.readout import compare
from abkit.stats.sufficient import MeanStats
from abkit.vocabulary import METHODS

C = MeanStats(n=5000, sum=500.0, sum_sq=500.0)
T = MeanStats(n=5000, sum=560.0, sum_sq=560.0)


# options an engine cannot run without
REQUIRED_OPTIONS: dict[str, dict[str, Any]] = {"confseq": {"n_planned": 20_000}}


def test_every_method_of_the_vocabulary_has_an_engine():
    assert set(engine_methods()) == set(METHODS)
    for method in METHODS:
        engine = get_engine(method)
        assert engine.method == method
        options = REQUIRED_OPTIONS.get(method, {})
        assert set(options) <= engine.options
        r = compare(C, T, metric_type="proportion", method=method, **options)
        assert r.method == method and r.status == "ok"


def test_unknown_method_and_unknown_options_are_refused_before_any_work():
    with pytest.raises(ValueError, match="method must be one of"):
        get_engine("frequentist")
    # options are checked even when an arm is empty (nothing is estimated)
    with pytest.raises(
        TypeError, match=r"unexpected options for method='sequential': \['prior_sd'\]"
    ):
        compare(None, T, metric_type="proportion", method="sequential", prior_sd=1.0)


def test_register_refuses_names_outside_the_vocabulary_and_duplicates():
    @dataclass(frozen=True)
    class Stray:
        method: str = "frequentist"
        options: frozenset[str] = frozenset()

        def read(
            self, difference: Difference, base: LiftResult, options: Mapping[str, Any]
        ) -> LiftResult:
            return base

    with pytest.raises(ValueError, match=r"not in abkit\.vocabulary\.METHODS"):
        register_engine(Stray())
    with pytest.raises(ValueError, match="already registered"):
        register_engine(get_engine("fixed"))


@dataclass(frozen=True)
class _HalfResult(ResultMixin):
    """A toy engine result: the fixed-horizon numbers with the p-value halved."""

    method: str
    status: str
    p_value: float | None
    abs_ci: Interval | None
    rel_ci: Interval | None
    rel_ci_bounded: bool
    significant: bool
    note: str


class _HalfEngine:
    method = "bayesian"
    options: frozenset[str] = frozenset({"factor"})

    def read(
        self, difference: Difference, base: LiftResult, options: Mapping[str, Any]
    ) -> LiftResult:
        assert base.p_value is not None
        p = base.p_value * options.get("factor", 0.5)
        result = _HalfResult("half", "ok", p, base.abs_ci, None, False, p < base.alpha, "toy")
        return base.with_engine(result, method=self.method, label="Toy")


@pytest.fixture
def toy_engine() -> Iterator[None]:
    original = get_engine("bayesian")
    register_engine(_HalfEngine(), replace=True)
    try:
        yield
    finally:
        register_engine(original, replace=True)


def test_a_registered_engine_is_used_by_compare_and_its_result_is_kept_typed(toy_engine):
    fixed = compare(C, T, metric_type="proportion")
    r = compare(C, T, metric_type="proportion", method="bayesian", factor=0.25)
    assert r.p_value == pytest.approx(fixed.p_value * 0.25, rel=1e-15)
    assert r.test == f"Toy (half) on {fixed.test}" and r.note == "toy"
    assert r.rel_ci is None and r.rel_ci_set is None and not r.rel_ci_bounded
    assert isinstance(r.details, _HalfResult)
    assert r.to_dict()["details"]["method"] == "half"
    assert "details" not in r.to_frame().columns
