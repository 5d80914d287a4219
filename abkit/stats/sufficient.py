"""Sufficient statistics: everything the engine needs from one arm of an experiment.

A per-unit metric value ``y_i`` (and, for ratio metrics, a denominator ``d_i``; for CUPED,
a pre-period covariate ``x_i``) enters only through sums, so a warehouse can compute them
in one ``GROUP BY`` and ship a handful of numbers instead of rows. Sums of the same arm
computed in pieces add up (``a + b``), which is how daily cumulative series are built.

Moments used throughout (unbiased, ``n - 1`` denominators):

    mean  = Σy / n
    var   = (Σy² - (Σy)² / n) / (n - 1)
    cov   = (Σxy - Σx·Σy / n) / (n - 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from abkit.errors import NotEnoughDataError

if TYPE_CHECKING:  # pragma: no cover - numpy is imported only by from_values
    from numpy.typing import ArrayLike


def _check_finite(obj: MeanStats | RatioStats) -> None:
    for f in fields(obj):
        value = getattr(obj, f.name)
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{type(obj).__name__}.{f.name} must be finite, got {value!r}")
    if obj.n < 0:
        raise ValueError(f"{type(obj).__name__}.n must be >= 0, got {obj.n}")


def _sample_cov(n: int, sum_a: float, sum_b: float, sum_ab: float) -> float:
    if n < 2:
        raise NotEnoughDataError(f"a variance needs at least 2 units, got {n}")
    # Clamp tiny negative values that come from cancellation in Σy² - (Σy)²/n.
    value = (sum_ab - sum_a * sum_b / n) / (n - 1)
    return value


@dataclass(frozen=True)
class MeanStats:
    """One arm of a mean or proportion metric (a proportion has ``y`` in {0, 1}).

    The covariate fields are all set or all ``None``; they carry the CUPED pre-period
    covariate ``x`` (Deng et al. 2013).
    """

    n: int
    sum: float
    sum_sq: float
    cov_sum: float | None = None
    cov_sum_sq: float | None = None
    cross_sum: float | None = None

    def __post_init__(self) -> None:
        _check_finite(self)
        covariate = (self.cov_sum, self.cov_sum_sq, self.cross_sum)
        if any(v is None for v in covariate) and not all(v is None for v in covariate):
            raise ValueError("cov_sum, cov_sum_sq and cross_sum must be given together")

    @property
    def has_covariate(self) -> bool:
        return self.cov_sum is not None

    @property
    def mean(self) -> float:
        if self.n < 1:
            raise NotEnoughDataError("a mean needs at least 1 unit")
        return self.sum / self.n

    @property
    def var(self) -> float:
        return max(_sample_cov(self.n, self.sum, self.sum, self.sum_sq), 0.0)

    @property
    def cov_mean(self) -> float:
        if self.cov_sum is None:
            raise ValueError("no covariate")
        return self.cov_sum / self.n

    @property
    def cov_var(self) -> float:
        if self.cov_sum is None or self.cov_sum_sq is None:
            raise ValueError("no covariate")
        return max(_sample_cov(self.n, self.cov_sum, self.cov_sum, self.cov_sum_sq), 0.0)

    @property
    def cross_cov(self) -> float:
        """Sample covariance of covariate and metric."""
        if self.cov_sum is None or self.cross_sum is None:
            raise ValueError("no covariate")
        return _sample_cov(self.n, self.cov_sum, self.sum, self.cross_sum)

    def __add__(self, other: MeanStats) -> MeanStats:
        if not isinstance(other, MeanStats):
            return NotImplemented
        if self.has_covariate != other.has_covariate:
            raise ValueError("cannot add MeanStats with and without a covariate")

        def plus(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a + b

        return MeanStats(
            n=self.n + other.n,
            sum=self.sum + other.sum,
            sum_sq=self.sum_sq + other.sum_sq,
            cov_sum=plus(self.cov_sum, other.cov_sum),
            cov_sum_sq=plus(self.cov_sum_sq, other.cov_sum_sq),
            cross_sum=plus(self.cross_sum, other.cross_sum),
        )

    @classmethod
    def from_values(cls, y: ArrayLike, x: ArrayLike | None = None) -> MeanStats:
        """Build from raw per-unit values (tests, simulations, small data)."""
        import numpy as np

        y = np.asarray(y, dtype=float)
        if x is None:
            return cls(n=int(y.size), sum=float(y.sum()), sum_sq=float((y * y).sum()))
        x = np.asarray(x, dtype=float)
        if x.shape != y.shape:
            raise ValueError("x and y must have the same shape")
        return cls(
            n=int(y.size),
            sum=float(y.sum()),
            sum_sq=float((y * y).sum()),
            cov_sum=float(x.sum()),
            cov_sum_sq=float((x * x).sum()),
            cross_sum=float((x * y).sum()),
        )


_RATIO_COVARIATE = (
    "pre_num_sum",
    "pre_num_sum_sq",
    "pre_den_sum",
    "pre_den_sum_sq",
    "pre_num_pre_den_sum",
    "pre_num_num_sum",
    "pre_num_den_sum",
    "pre_den_num_sum",
    "pre_den_den_sum",
)


@dataclass(frozen=True)
class RatioStats:
    """One arm of a ratio metric Σy / Σd over units (delta method; Deng et al. 2018).

    The optional covariate fields carry, for CUPED on a ratio metric, the pre-period
    numerator ``x_i`` and denominator ``e_i`` of each unit (all nine set or all ``None``):

    ============================  =======
    ``pre_num_sum``               Σx
    ``pre_num_sum_sq``            Σx²
    ``pre_den_sum``               Σe
    ``pre_den_sum_sq``            Σe²
    ``pre_num_pre_den_sum``       Σx·e
    ``pre_num_num_sum``           Σx·y
    ``pre_num_den_sum``           Σx·d
    ``pre_den_num_sum``           Σe·y
    ``pre_den_den_sum``           Σe·d
    ============================  =======

    With them the pre-period ratio ``R₀ = Σx/Σe`` and its linearised covariance with the
    post-period ratio can be formed from sums alone (see :mod:`abkit.stats.estimators`).
    """

    n: int
    num_sum: float
    num_sum_sq: float
    den_sum: float
    den_sum_sq: float
    num_den_sum: float
    pre_num_sum: float | None = None
    pre_num_sum_sq: float | None = None
    pre_den_sum: float | None = None
    pre_den_sum_sq: float | None = None
    pre_num_pre_den_sum: float | None = None
    pre_num_num_sum: float | None = None
    pre_num_den_sum: float | None = None
    pre_den_num_sum: float | None = None
    pre_den_den_sum: float | None = None

    def __post_init__(self) -> None:
        _check_finite(self)
        covariate = [getattr(self, name) for name in _RATIO_COVARIATE]
        if any(v is None for v in covariate) and not all(v is None for v in covariate):
            raise ValueError(
                "the RatioStats covariate fields (" + ", ".join(_RATIO_COVARIATE) + ") "
                "must be given together"
            )

    @property
    def has_covariate(self) -> bool:
        return self.pre_num_sum is not None

    @property
    def ratio(self) -> float:
        if self.den_sum == 0:
            raise NotEnoughDataError("the denominator sums to zero")
        return self.num_sum / self.den_sum

    @property
    def pre_ratio(self) -> float:
        """The pre-period ratio ``R₀ = Σx/Σe``."""
        if self.pre_num_sum is None or self.pre_den_sum is None:
            raise ValueError("no covariate")
        if self.pre_den_sum == 0:
            raise NotEnoughDataError("the pre-period denominator sums to zero")
        return self.pre_num_sum / self.pre_den_sum

    @property
    def num_var(self) -> float:
        return max(_sample_cov(self.n, self.num_sum, self.num_sum, self.num_sum_sq), 0.0)

    @property
    def den_var(self) -> float:
        return max(_sample_cov(self.n, self.den_sum, self.den_sum, self.den_sum_sq), 0.0)

    @property
    def num_den_cov(self) -> float:
        return _sample_cov(self.n, self.num_sum, self.den_sum, self.num_den_sum)

    def without_covariate(self) -> RatioStats:
        """The same arm with the CUPED covariate dropped."""
        return RatioStats(
            n=self.n,
            num_sum=self.num_sum,
            num_sum_sq=self.num_sum_sq,
            den_sum=self.den_sum,
            den_sum_sq=self.den_sum_sq,
            num_den_sum=self.num_den_sum,
        )

    def __add__(self, other: RatioStats) -> RatioStats:
        if not isinstance(other, RatioStats):
            return NotImplemented
        if self.has_covariate != other.has_covariate:
            raise ValueError("cannot add RatioStats with and without a covariate")
        extra: dict[str, float] = {}
        if self.has_covariate:
            extra = {k: getattr(self, k) + getattr(other, k) for k in _RATIO_COVARIATE}
        return RatioStats(
            n=self.n + other.n,
            num_sum=self.num_sum + other.num_sum,
            num_sum_sq=self.num_sum_sq + other.num_sum_sq,
            den_sum=self.den_sum + other.den_sum,
            den_sum_sq=self.den_sum_sq + other.den_sum_sq,
            num_den_sum=self.num_den_sum + other.num_den_sum,
            **extra,
        )

    @classmethod
    def from_values(
        cls,
        num: ArrayLike,
        den: ArrayLike,
        pre_num: ArrayLike | None = None,
        pre_den: ArrayLike | None = None,
    ) -> RatioStats:
        """Build from raw per-unit values; ``pre_num`` and ``pre_den`` (given together) are
        the pre-period numerator and denominator used by ratio CUPED."""
        import numpy as np

        y = np.asarray(num, dtype=float)
        d = np.asarray(den, dtype=float)
        if y.shape != d.shape:
            raise ValueError("numerator and denominator must have the same shape")
        base: dict[str, Any] = dict(
            n=int(y.size),
            num_sum=float(y.sum()),
            num_sum_sq=float((y * y).sum()),
            den_sum=float(d.sum()),
            den_sum_sq=float((d * d).sum()),
            num_den_sum=float((y * d).sum()),
        )
        if pre_num is None and pre_den is None:
            return cls(**base)
        if pre_num is None or pre_den is None:
            raise ValueError("pre_num and pre_den must be given together")
        x = np.asarray(pre_num, dtype=float)
        e = np.asarray(pre_den, dtype=float)
        if x.shape != y.shape or e.shape != y.shape:
            raise ValueError("pre_num and pre_den must have the shape of num")
        return cls(
            **base,
            pre_num_sum=float(x.sum()),
            pre_num_sum_sq=float((x * x).sum()),
            pre_den_sum=float(e.sum()),
            pre_den_sum_sq=float((e * e).sum()),
            pre_num_pre_den_sum=float((x * e).sum()),
            pre_num_num_sum=float((x * y).sum()),
            pre_num_den_sum=float((x * d).sum()),
            pre_den_num_sum=float((e * y).sum()),
            pre_den_den_sum=float((e * d).sum()),
        )
