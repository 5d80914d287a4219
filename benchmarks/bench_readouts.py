"""Benchmark: 10,000 metric-by-variant readouts from summary statistics.

abkit's vectorised ``compare_many`` (one call) against the same comparisons done one by one
with statsmodels (``test_proportions_2indep`` + ``confint_proportions_2indep`` for
proportions, ``CompareMeans`` for Welch means via ``ttest_ind_from_stats``-equivalent
summary inputs) and against abkit's own scalar ``compare``. Data are generated here; the
script checks that all routes agree before printing a Markdown table of timings and ratios.

    python benchmarks/bench_readouts.py [--n 10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_cells(k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    half = k // 2
    # Proportions: conversion metrics of many experiments and variants.
    n_c = rng.integers(1_000, 200_000, half)
    n_t = rng.integers(1_000, 200_000, half)
    p = rng.uniform(0.01, 0.3, half)
    k_c = rng.binomial(n_c, p).astype(float)
    k_t = rng.binomial(n_t, p * rng.uniform(0.95, 1.08, half)).astype(float)
    prop = ({"n": n_c, "sum": k_c, "sum_sq": k_c}, {"n": n_t, "sum": k_t, "sum_sq": k_t})
    # Means: revenue-like metrics summarised as n, Σy, Σy².
    m = k - half
    cells = []
    for _ in range(2):
        n = rng.integers(1_000, 200_000, m)
        mean = rng.uniform(5, 50, m)
        sd = mean * rng.uniform(0.5, 3.0, m)
        cells.append({"n": n, "sum": n * mean, "sum_sq": (n - 1) * sd**2 + n * mean**2})
    return prop, tuple(cells)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    from scipy import stats
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    from abkit.stats.readout import compare
    from abkit.stats.sufficient import MeanStats
    from abkit.stats.vectorised import compare_many

    prop, mean = make_cells(args.n)

    def vectorised():
        a = compare_many(prop[0], prop[1], metric_type="proportion")
        b = compare_many(mean[0], mean[1], metric_type="mean")
        return np.r_[a.p_value, b.p_value], np.r_[a.abs_ci_lower, b.abs_ci_lower]

    def statsmodels_loop():
        ps, los = [], []
        c, t = prop
        for i in range(len(c["n"])):
            res = test_proportions_2indep(
                t["sum"][i], t["n"][i], c["sum"][i], c["n"][i], method="wald", compare="diff"
            )
            lo, _ = confint_proportions_2indep(
                t["sum"][i], t["n"][i], c["sum"][i], c["n"][i], method="wald", compare="diff"
            )
            ps.append(res.pvalue)
            los.append(lo)
        c, t = mean
        for i in range(len(c["n"])):
            mc, mt = c["sum"][i] / c["n"][i], t["sum"][i] / t["n"][i]
            sc = np.sqrt((c["sum_sq"][i] - c["n"][i] * mc**2) / (c["n"][i] - 1))
            st = np.sqrt((t["sum_sq"][i] - t["n"][i] * mt**2) / (t["n"][i] - 1))
            res = stats.ttest_ind_from_stats(mt, st, t["n"][i], mc, sc, c["n"][i], equal_var=False)
            vc, vt = sc**2 / c["n"][i], st**2 / t["n"][i]
            df = (vc + vt) ** 2 / (vc**2 / (c["n"][i] - 1) + vt**2 / (t["n"][i] - 1))
            ps.append(res.pvalue)
            los.append(mt - mc - stats.t.ppf(0.975, df) * np.sqrt(vc + vt))
        return np.array(ps), np.array(los)

    def scalar_loop():
        ps = []
        for kind, (c, t) in (("proportion", prop), ("mean", mean)):
            for i in range(len(c["n"])):
                r = compare(
                    MeanStats(int(c["n"][i]), c["sum"][i], c["sum_sq"][i]),
                    MeanStats(int(t["n"][i]), t["sum"][i], t["sum_sq"][i]),
                    metric_type=kind,
                )
                ps.append(r.p_value)
        return np.array(ps)

    (p_vec, lo_vec), t_vec = timed(vectorised)
    (p_sm, lo_sm), t_sm = timed(statsmodels_loop)
    p_sc, t_sc = timed(scalar_loop)
    rel = lambda a, b: float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))  # noqa: E731
    assert rel(p_vec, p_sm) < 1e-6 and rel(lo_vec, lo_sm) < 1e-6 and rel(p_sc, p_sm) < 1e-6
    print(
        f"{args.n:,} comparisons ({args.n // 2:,} proportions, {args.n - args.n // 2:,} Welch means)"
    )
    print(
        f"max relative difference vs statsmodels/scipy: p {rel(p_vec, p_sm):.1e}, CI {rel(lo_vec, lo_sm):.1e}\n"
    )
    print("| route | time (s) | comparisons/s | vs statsmodels loop |")
    print("|---|---:|---:|---:|")
    for name, t in (
        ("statsmodels/scipy, one by one", t_sm),
        ("abkit `compare`, one by one", t_sc),
        ("abkit `compare_many`, one call", t_vec),
    ):
        print(f"| {name} | {t:.3f} | {args.n / t:,.0f} | {t_sm / t:.1f}x |")


if __name__ == "__main__":
    main()
