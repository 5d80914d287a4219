"""Render time and size of the executive HTML report (goal: < 20 s including kernel start).

    python benchmarks/bench_report.py [--units 40000] [--repeat 3]

In one run:

* a simulated demo experiment (``abkit.demo.run_demo``, the ``ship`` scenario: assign
  through the exposure hook, ingest) is loaded into a throw-away SQLite file;
* ``render_report`` of the executive template is timed end to end ``--repeat`` times
  (a fresh kernel each time: start, imports, ``analyze``, plots, nbconvert export,
  offline audit, write); the median is reported with the kernel-and-cells share;
* baselines measured in the same run: ``analyze()`` alone in this process (the statistics
  the report cannot avoid), and an empty notebook executed on a fresh kernel (the fixed
  cost of a kernel);
* sizes: abkit's offline HTML against nbconvert's stock ``lab`` template exporting the
  same executed notebook, with the number of network references each one makes.

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOAL_SECONDS = 20.0


def _remote_refs(page: str) -> int:
    return len(re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page, re.I))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=40_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import nbformat

    from abkit.analysis.analyze import analyze
    from abkit.demo import run_demo
    from abkit.report.render import (
        check_offline,
        execute_notebook,
        export_html,
        render_report,
    )

    with tempfile.TemporaryDirectory(prefix="abkit-bench-report-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        demo = run_demo(
            "ship", db=root / "bench.db", reports_dir=root, n_units=args.units, render=False
        )
        load_seconds = time.perf_counter() - t0
        metrics = root / f"{demo.experiment}.metrics.toml"

        renders, executes, sizes = [], [], []
        for i in range(args.repeat):
            report = render_report(
                demo.db_url,
                demo.experiment,
                out=root / f"r{i}.html",
                metrics=metrics,
                save_notebook=True,
            )
            renders.append(report.seconds)
            executes.append(report.execute_seconds)
            sizes.append(report.size_bytes)
        page = report.path.read_text(encoding="utf-8")
        assert check_offline(page) == []

        analyses = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            analyze(demo.db_url, demo.experiment, str(metrics))
            analyses.append(time.perf_counter() - t0)

        kernels = []
        for _ in range(args.repeat):
            nb = nbformat.v4.new_notebook()
            nb.cells = [nbformat.v4.new_code_cell("1")]
            t0 = time.perf_counter()
            execute_notebook(nb)
            kernels.append(time.perf_counter() - t0)

        executed = nbformat.read(report.notebook_path, as_version=4)
        t0 = time.perf_counter()
        ours = export_html(executed, hide_code=True, title="bench")
        export_seconds = time.perf_counter() - t0
        from nbconvert import HTMLExporter

        stock, _ = HTMLExporter(template_name="lab", exclude_input=True).from_notebook_node(
            executed
        )

    render = statistics.median(renders)
    rows = [
        ("load demo data (simulate + assign + ingest)", f"{load_seconds:.2f} s", ""),
        (
            "**executive report, end to end** (median)",
            f"**{render:.2f} s**",
            f"goal < {GOAL_SECONDS:.0f} s: {'met' if render < GOAL_SECONDS else 'MISSED'}",
        ),
        ("  of which kernel start + cells", f"{statistics.median(executes):.2f} s", ""),
        (
            "  of which HTML export + audit + write",
            f"{render - statistics.median(executes):.2f} s",
            "",
        ),
        (
            "baseline: empty notebook on a fresh kernel",
            f"{statistics.median(kernels):.2f} s",
            f"the report takes {render / statistics.median(kernels):.1f}x this",
        ),
        (
            "baseline: analyze() in-process",
            f"{statistics.median(analyses):.2f} s",
            f"the report takes {render / statistics.median(analyses):.1f}x this",
        ),
        ("export only (abkit template)", f"{export_seconds:.2f} s", ""),
        (
            "HTML size, abkit offline template",
            f"{statistics.median(sizes) / 1024:,.0f} KB",
            f"{_remote_refs(ours)} network references, {ours.lower().count('<script')} scripts",
        ),
        (
            "HTML size, nbconvert stock lab template",
            f"{len(stock.encode()) / 1024:,.0f} KB",
            f"{_remote_refs(stock)} network references, {stock.lower().count('<script')} scripts",
        ),
    ]
    print(f"\nExecutive report, {args.units:,} simulated users, {args.repeat} repeats\n")
    print("| measure | value | note |")
    print("|---|---|---|")
    for name, value, note in rows:
        print(f"| {name} | {value} | {note} |")


if __name__ == "__main__":
    main()
