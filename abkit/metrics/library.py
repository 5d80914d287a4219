"""Built-in metrics: the usual measures of business impact, ready to use or override.

Event-type conventions (change them with ``metric.with_(...)`` or a TOML ``[[metric]]``
table with ``builtin = ...`` if your events are named differently):

* ``purchase`` events carry the order value in ``value`` (revenue),
* ``impression`` and ``click`` events mark a shown and a clicked item.

All windows default to 7 days after first exposure.

| name | type | per-unit value | direction |
|---|---|---|---|
| ``conversion_rate`` | proportion | 1 if >= 1 purchase | higher |
| ``revenue_per_user`` | mean | Σ purchase value (capped at the 99th pct of buyers) | higher |
| ``orders_per_user`` | mean | number of purchases | higher |
| ``average_order_value`` | ratio | Σ revenue / Σ orders | higher |
| ``repeat_purchase_rate`` | proportion | 1 if >= 2 purchases | higher |
| ``click_through_rate`` | ratio | Σ clicks / Σ impressions | higher |
| ``time_to_convert`` | ratio | Σ hours to first purchase / Σ converted | lower |

*Time to convert* is the mean number of hours from a unit's first exposure to its first
purchase **among units that converted within the window**; non-converters contribute 0 to
numerator and denominator alike, so they are excluded from the average but not from the
variance calculation (delta method over all exposed units). Read it together with the
conversion rate: a variant that converts *more* slow buyers can lengthen it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from abkit.errors import ConfigError
from abkit.metrics.definitions import Covariate, Metric, mean, proportion, ratio

DEFAULT_WINDOW = "7d"


def _library() -> dict[str, Metric]:
    metrics = [
        proportion(
            "conversion_rate",
            "purchase",
            window=DEFAULT_WINDOW,
            description="share of exposed units with at least one purchase within 7 days",
        ),
        mean(
            "revenue_per_user",
            "purchase",
            aggregate="sum",
            window=DEFAULT_WINDOW,
            cap_percentile=99.0,
            unit="currency",
            description="revenue per exposed unit within 7 days, capped at the 99th "
            "percentile of buyers' revenue",
        ),
        mean(
            "orders_per_user",
            "purchase",
            aggregate="count",
            window=DEFAULT_WINDOW,
            unit="count",
            description="purchases per exposed unit within 7 days",
        ),
        ratio(
            "average_order_value",
            ("purchase", "sum"),
            ("purchase", "count"),
            window=DEFAULT_WINDOW,
            unit="currency",
            description="revenue per order (Σ revenue / Σ orders, delta method)",
        ),
        proportion(
            "repeat_purchase_rate",
            "purchase",
            window=DEFAULT_WINDOW,
            min_count=2,
            description="share of exposed units with two or more purchases within 7 days",
        ),
        ratio(
            "click_through_rate",
            ("click", "count"),
            ("impression", "count"),
            window=DEFAULT_WINDOW,
            unit="percent",
            description="clicks per impression (Σ clicks / Σ impressions, delta method)",
        ),
        ratio(
            "time_to_convert",
            ("purchase", "hours_to_first"),
            ("purchase", "converted"),
            window=DEFAULT_WINDOW,
            direction="lower",
            unit="duration",
            description="mean hours from first exposure to first purchase, among units "
            "that purchased within 7 days",
        ),
    ]
    return {m.name: m for m in metrics}


BUILTIN_METRICS: dict[str, Metric] = _library()


def builtin_metric(name: str) -> Metric:
    """The library metric called ``name`` (``KeyError`` naming the choices otherwise)."""
    try:
        return BUILTIN_METRICS[name]
    except KeyError:
        raise KeyError(
            f"no builtin metric {name!r}; choose one of {', '.join(sorted(BUILTIN_METRICS))}"
        ) from None


def builtin_metrics(*names: str) -> list[Metric]:
    """Several library metrics (all of them when no name is given)."""
    return [builtin_metric(n) for n in names] if names else list(BUILTIN_METRICS.values())


def bind_covariates(metrics: Sequence[Metric]) -> list[Metric]:
    """Resolve every ``pre:<metric>`` covariate of ``metrics`` (:class:`Covariate`).

    The name is looked up among ``metrics``, then in the library. The referenced metric must
    be a proportion or a mean (a single per-unit value); its numerator over its own
    pre-period becomes the covariate (the 0/1 indicator for a proportion, with its absolute
    cap; a percentile cap is not applied to a covariate). Already bound covariates and
    ``prediction:`` covariates are kept as they are.
    """
    by_name = {m.name: m for m in metrics}
    out: list[Metric] = []
    for metric in metrics:
        if all(c.bound for c in metric.covariates):
            out.append(metric)
            continue
        bound: list[Covariate] = []
        for cov in metric.covariates:
            if cov.bound:
                bound.append(cov)
                continue
            ref = by_name.get(cov.ref)
            if ref is None:
                try:
                    ref = builtin_metric(cov.ref)
                except KeyError:
                    raise ConfigError(
                        f"metric {metric.name!r}: covariate {cov.label!r} names no analysed "
                        "or library metric",
                        field="covariates",
                    ) from None
            if ref.type not in ("proportion", "mean"):
                raise ConfigError(
                    f"metric {metric.name!r}: covariate {cov.label!r} must name a proportion "
                    f"or mean metric (one value per unit), not a {ref.type} metric",
                    field="covariates",
                )
            bound.append(
                replace(
                    cov,
                    measure=ref.numerator,
                    min_count=ref.min_count if ref.type == "proportion" else None,
                    cap=ref.cap,
                    lookback_us=ref.pre_period_us,
                )
            )
        out.append(replace(metric, covariates=tuple(bound)))
    return out
