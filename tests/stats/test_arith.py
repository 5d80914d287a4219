"""abkit.stats._arith: the float path and the array path of each helper agree."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from abkit.stats._arith import clip, copysign, maximum, minimum, sqrt, where

finite = st.floats(-1e300, 1e300, allow_nan=False)


@given(finite, finite)
def test_float_and_array_paths_agree(a, b):
    arr_a, arr_b = np.array([a]), np.array([b])
    assert maximum(a, b) == maximum(arr_a, arr_b)[0] == max(a, b)
    assert minimum(a, b) == minimum(arr_a, arr_b)[0] == min(a, b)
    assert clip(a, -1.0, 1.0) == clip(arr_a, -1.0, 1.0)[0]
    assert sqrt(abs(a)) == sqrt(np.abs(arr_a))[0] == math.sqrt(abs(a))
    assert copysign(a, b) == copysign(arr_a, arr_b)[0]
    assert where(a > b, a, b) == where(arr_a > arr_b, arr_a, arr_b)[0]


def test_float_inputs_stay_python_floats():
    assert type(maximum(1.0, 2.0)) is float and type(sqrt(4.0)) is float
    assert isinstance(maximum(np.array([1.0]), 2.0), np.ndarray)
