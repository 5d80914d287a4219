"""Leaf-by-leaf comparison of two readouts (``AnalysisResult.to_dict()``), for tests.

Two engines (or a source and abkit's store) given the same rows must give the same readout:
every float to 1e-9 (relative, or absolute near zero: another join order sums the same
doubles in another order), every other leaf exactly. The fields where an engine names
itself (its dialect, the source it read, where it ran) are left out.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from typing import Any

# where each engine (or source) names itself; everything else must agree
ENGINE_FIELDS = frozenset({"dialect", "source", "database", "where"})


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf of a JSON-like value with its path (``/metrics[2]/lift``), depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}/{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def assert_same_readout(
    got: Any,
    want: Any,
    *,
    ignore: Collection[str] = ENGINE_FIELDS,
    rel: float = 1e-9,
    abs_: float = 1e-9,
    path: str = "",
) -> None:
    """Raise ``AssertionError`` naming the first leaf (``/metrics[2]/lift``) that differs.

    Floats: equal when both are NaN or ``|got - want| <= max(rel·max(|got|, |want|), abs_)``
    (:func:`math.isclose`); dictionaries must have the same keys, sequences the same length.
    """
    if isinstance(want, dict):
        assert isinstance(got, dict), (path, "not a mapping", got)
        assert set(got) == set(want), (path, sorted(set(got) ^ set(want)))
        for key in want:
            if key not in ignore:
                assert_same_readout(
                    got[key], want[key], ignore=ignore, rel=rel, abs_=abs_, path=f"{path}/{key}"
                )
    elif isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)), (path, "not a sequence", got)
        assert len(got) == len(want), (path, len(got), len(want))
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_readout(g, w, ignore=ignore, rel=rel, abs_=abs_, path=f"{path}[{i}]")
    elif isinstance(want, float) and isinstance(got, float):
        same = (math.isnan(want) and math.isnan(got)) or math.isclose(
            got, want, rel_tol=rel, abs_tol=abs_
        )
        assert same, (path, got, want)
    else:
        assert got == want, (path, got, want)
