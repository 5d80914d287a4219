"""Benchmark of the assignment core against raw mmh3 and two leading SDKs.

Measures, in one run, and prints a Markdown table:

* ``assign`` median latency per call vs a raw ``mmh3.hash`` of the same key string
  (goals: < 2 µs per call and within 5x the raw hash);
* ``assign_many`` on 1M ids vs a list comprehension of raw hashes;
* import time of ``from abkit import assign`` in a fresh interpreter (median of several)
  vs GrowthBook's and Optimizely's Python SDKs (goal: < 30 ms);
* the same inline experiment (two variants, 50/50, all traffic) evaluated per call by
  GrowthBook's Python SDK (``gb.run``) and Optimizely's (``get_variation`` on a minimal
  datafile), as peers. Peers are benchmark-only dependencies (the ``bench`` extra).

Latency method: the ids are split in chunks of ``CHUNK`` calls; each chunk is timed with
``perf_counter_ns`` and divided by its size; the table shows the median over chunks
(robust to the scheduler noise of a shared machine). Usage::

    python benchmarks/bench_assign.py [--quick]
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from importlib.metadata import version

import mmh3

from abkit.assignment import (
    Experiment,
    add_exposure_hook,
    assign,
    assign_many,
    hashing,
    remove_exposure_hook,
)

CHUNK = 1000


def per_call_ns(
    fn: Callable[[str], object], ids: list[str], chunk: int = CHUNK, rounds: int = 3
) -> float:
    """Median over chunks of (chunk time / chunk size), best of ``rounds`` passes."""
    best = []
    for _ in range(rounds):
        samples = []
        for s in range(0, len(ids) - chunk + 1, chunk):
            part = ids[s : s + chunk]
            t = time.perf_counter_ns()
            for u in part:
                fn(u)
            samples.append((time.perf_counter_ns() - t) / chunk)
        best.append(statistics.median(samples))
    return min(best)


def import_ms(statement: str, runs: int) -> tuple[float, float] | None:
    code = (
        "import time; t = time.perf_counter()\n"
        f"{statement}\n"
        "print((time.perf_counter() - t) * 1000)"
    )
    times = []
    for _ in range(runs):
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if res.returncode != 0:
            return None
        times.append(float(res.stdout.strip().splitlines()[-1]))
    return statistics.median(times), min(times)


def growthbook_runner():
    try:
        from growthbook import Experiment as GBExperiment
        from growthbook import GrowthBook
    except ImportError:
        return None
    gb = GrowthBook(attributes={"id": "seed"})
    exp = GBExperiment(key="ranker", variations=["control", "treatment"])

    def run(uid: str) -> str:
        gb.set_attributes({"id": uid})  # one user per request, as a service does
        return gb.run(exp).value

    return run


def optimizely_runner():
    try:
        import logging

        from optimizely import optimizely
        from optimizely.logger import NoOpLogger
    except ImportError:
        return None
    logging.getLogger("optimizely").setLevel(logging.CRITICAL)
    datafile = {
        "version": "4",
        "projectId": "1",
        "accountId": "1",
        "revision": "1",
        "anonymizeIP": True,
        "botFiltering": False,
        "attributes": [],
        "audiences": [],
        "typedAudiences": [],
        "events": [],
        "groups": [],
        "rollouts": [],
        "featureFlags": [],
        "experiments": [
            {
                "id": "100",
                "key": "ranker",
                "status": "Running",
                "layerId": "10",
                "audienceIds": [],
                "forcedVariations": {},
                "variations": [
                    {"id": "101", "key": "control", "variables": []},
                    {"id": "102", "key": "treatment", "variables": []},
                ],
                "trafficAllocation": [
                    {"entityId": "101", "endOfRange": 5000},
                    {"entityId": "102", "endOfRange": 10000},
                ],
            }
        ],
    }
    client = optimizely.Optimizely(datafile=json.dumps(datafile), logger=NoOpLogger())
    if not client.is_valid:
        return None

    def run(uid: str) -> str | None:
        return client.get_variation("ranker", uid)  # no impression event dispatched

    return run


def fmt_ns(ns: float) -> str:
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def main() -> None:
    quick = "--quick" in sys.argv
    n_latency = 50_000 if quick else 200_000
    n_bulk = 200_000 if quick else 1_000_000
    import_runs = 5 if quick else 9
    ids = [f"user-{i}" for i in range(n_latency)]
    exp = Experiment("ranker", variants=["control", "treatment"])
    exp_half = Experiment("ranker", variants=["control", "treatment"], traffic=0.5)
    exp_full = Experiment(
        "ranker",
        variants=["control", "treatment"],
        traffic=0.5,
        namespace={"name": "homepage", "start": 0.0, "end": 0.5},
        holdout={"name": "global", "fraction": 0.05},
        targeting={"not": {"attr": "ua", "regex": "(?i)bot|crawler"}},
    )
    attrs = {"ua": "Mozilla/5.0"}
    prefix = "ranker" + hashing.SEPARATOR
    key_list = [prefix + u for u in ids]
    h = mmh3.hash
    seed = hashing.SEED_VARIANT

    raw_prebuilt = per_call_ns(lambda k: h(k, seed, False), key_list)
    raw_built = per_call_ns(lambda u: h(prefix + u, seed, False), ids)
    # the loop calls through a lambda, so subtract the same empty-call overhead everywhere
    empty = per_call_ns(lambda u: None, ids)
    a_simple = per_call_ns(lambda u: assign(exp, u), ids)
    a_half = per_call_ns(lambda u: assign(exp_half, u), ids)
    a_full = per_call_ns(lambda u: assign(exp_full, u, attrs), ids)
    # a realistic hook enqueues into a bounded buffer that a background thread drains
    sink: deque = deque(maxlen=10_000)
    add_exposure_hook(sink.append)
    a_hook = per_call_ns(lambda u: assign(exp, u), ids[:50_000], rounds=2)
    remove_exposure_hook(sink.append)

    def net(x: float) -> float:
        return max(x - empty, 1.0)

    gb = growthbook_runner()
    opt = optimizely_runner()
    peer_ids = ids[:20_000]
    gb_ns = per_call_ns(gb, peer_ids, chunk=200, rounds=1) if gb else None
    opt_ns = per_call_ns(opt, peer_ids, chunk=200, rounds=1) if opt else None

    bulk_ids = [f"user-{i}" for i in range(n_bulk)]

    def best_of(fn: Callable[[], object], runs: int = 3) -> float:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    raw_bulk = best_of(lambda: [h(prefix + u, seed, False) for u in bulk_ids])
    many_full = best_of(lambda: assign_many(exp, bulk_ids))
    many_half = best_of(lambda: assign_many(exp_half, bulk_ids))
    exp_five = Experiment("ranker", variants=["control", "treatment"], traffic=0.05)
    many_five = best_of(lambda: assign_many(exp_five, bulk_ids))

    def loop_assign() -> None:
        for u in bulk_ids:
            assign(exp, u)

    loop = best_of(loop_assign, 1)

    imp_abkit = import_ms("from abkit import assign", import_runs)
    imp_gb = import_ms("from growthbook import GrowthBook", import_runs)
    imp_opt = import_ms("from optimizely import optimizely", import_runs)
    try:
        load = (
            "load average "
            + " / ".join(f"{x:.1f}" for x in os.getloadavg())
            + f" on {os.cpu_count()} CPUs"
        )
    except OSError:
        load = "unknown"

    print(
        f"abkit assignment benchmark: Python {platform.python_version()}, {platform.machine()}, "
        f"mmh3 {version('mmh3')}; per-call figures are medians over chunks "
        f"of {CHUNK} calls with the loop overhead ({fmt_ns(empty)}) subtracted.\n"
    )
    print("| measurement | time | baseline | ratio | goal |")
    print("|---|---:|---:|---:|---|")
    print(f"| raw `mmh3.hash(key)`, key prebuilt | {fmt_ns(net(raw_prebuilt))} | | | |")
    print(f"| raw `mmh3.hash(salt + id)` (key built per call) | {fmt_ns(net(raw_built))} | | | |")
    for label, val, goal in [
        ("`assign` 50/50, all traffic", a_simple, True),
        ("`assign` 50/50, 50% traffic", a_half, True),
        ("`assign` + namespace, holdout, targeting", a_full, False),
        ("`assign` + exposure hook (record built, deque.append)", a_hook, False),
    ]:
        ratio = net(val) / net(raw_built)
        if goal:
            verdict = (
                f"< 2 µs {'✅' if net(val) < 2000 else '❌'}, ≤ 5× {'✅' if ratio <= 5 else '❌'}"
            )
        else:
            verdict = "slow path" if val is a_full else "hook path"
        print(
            f"| {label} | {fmt_ns(net(val))} | raw hash, key built | {ratio:.1f}× "
            f"(vs prebuilt key {net(val) / net(raw_prebuilt):.1f}×) | {verdict} |"
        )
    if gb_ns is not None:
        print(
            f"| GrowthBook SDK `set_attributes` + `run`, same experiment | {fmt_ns(net(gb_ns))} | abkit `assign` | "
            f"{net(gb_ns) / net(a_simple):.0f}× slower than abkit | peer |"
        )
    if opt_ns is not None:
        print(
            f"| Optimizely SDK `get_variation`, same experiment | {fmt_ns(net(opt_ns))} | abkit `assign` | "
            f"{net(opt_ns) / net(a_simple):.0f}× slower than abkit | peer |"
        )
    print(
        f"| `assign_many`, {n_bulk:,} ids, all traffic | {many_full * 1000:.0f} ms "
        f"({many_full / n_bulk * 1e9:.0f} ns/id) | raw-hash list comprehension {raw_bulk * 1000:.0f} ms | "
        f"{many_full / raw_bulk:.1f}× | identical to `assign` |"
    )
    print(
        f"| `assign_many`, {n_bulk:,} ids, 50% traffic | {many_half * 1000:.0f} ms "
        f"({many_half / n_bulk * 1e9:.0f} ns/id) | raw-hash list comprehension | {many_half / raw_bulk:.1f}× | |"
    )
    print(
        f"| `assign_many`, {n_bulk:,} ids, 5% traffic (variant hash only for enrolled) | "
        f"{many_five * 1000:.0f} ms ({many_five / n_bulk * 1e9:.0f} ns/id) | "
        f"raw-hash list comprehension | {many_five / raw_bulk:.1f}× | |"
    )
    print(
        f"| `assign` in a Python loop, {n_bulk:,} ids | {loop * 1000:.0f} ms | `assign_many` | "
        f"{loop / many_full:.1f}× slower than bulk | |"
    )

    def imp(label: str, ms: tuple[float, float] | None, goal: str = "") -> None:
        if ms is None or imp_abkit is None:
            print(f"| {label} | not installed | | | |")
        else:
            print(
                f"| {label} | {ms[0]:.1f} ms (min {ms[1]:.1f}) | abkit | "
                f"{ms[0] / imp_abkit[0]:.1f}× | {goal} |"
            )

    ok = imp_abkit is not None and imp_abkit[0] < 30
    imp(
        "import `from abkit import assign` (fresh process)",
        imp_abkit,
        "< 30 ms " + ("✅" if ok else "❌"),
    )
    imp("import `from growthbook import GrowthBook`", imp_gb)
    imp("import `from optimizely import optimizely`", imp_opt)
    print(
        f"\nImport times are measured inside a fresh interpreter (median of {import_runs}, "
        f"min in brackets); interpreter start-up itself is excluded. Machine load during the "
        f"run: {load}."
    )


if __name__ == "__main__":
    main()
