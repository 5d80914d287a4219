"""Run every benchmark in sequence and print their Markdown tables.

Each script generates its own data and measures its baseline in the same run, so the
ratios are comparable across machines even where absolute times are not. Sizes here are
the defaults of each script; pass ``--quick`` for a smoke run of a few minutes.

    python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL: list[list[str]] = [
    ["bench_assign.py"],
    ["bench_readouts.py"],
    ["bench_ingest.py", "--rows", "1000000", "10000000"],
    ["bench_analysis.py"],
    ["bench_report.py"],
    ["bench_lifecycle.py"],
]
QUICK: list[list[str]] = [
    ["bench_assign.py", "--quick"],
    ["bench_readouts.py", "--n", "2000"],
    ["bench_ingest.py", "--rows", "100000"],
    ["bench_analysis.py", "--units", "20000", "100000"],
    ["bench_report.py", "--repeat", "1"],
    ["bench_lifecycle.py", "--experiments", "500"],
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    args = parser.parse_args()
    failures = 0
    for command in QUICK if args.quick else FULL:
        print(f"\n## {' '.join(command)}\n", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]], check=False)
        print(f"\n({time.perf_counter() - start:.0f} s, exit {result.returncode})", flush=True)
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
