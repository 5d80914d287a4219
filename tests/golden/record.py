"""Record the golden data and outputs with the code on ``PYTHONPATH`` (see golden_cases.py).

Run from a checkout of the reference commit, once::

    PYTHONPATH=/path/to/reference-checkout python tests/golden/record.py

It writes tests/golden/data/{experiments.json, exposures.jsonl.gz, events.jsonl.gz,
outputs.json.gz}. The PostgreSQL outputs use the throw-away server of abkit.testing.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_cases import CASES, DATA, METRICS_TOML, load_into, render_case, run_case

START = datetime(2026, 3, 2, tzinfo=timezone.utc)


def simulate() -> None:
    from abkit.simulate import TrueEffect, simulate_experiment

    sims = [
        simulate_experiment(
            3000,
            key="golden-ship",
            effects=TrueEffect(conversion_lift=0.25),
            start=START,
            unit_prefix="s",
            seed=11,
        ),
        simulate_experiment(
            3000,
            key="golden-breach",
            effects=TrueEffect(conversion_lift=0.05, guardrail_effect=0.4),
            start=START,
            unit_prefix="b",
            seed=12,
        ),
        simulate_experiment(
            3000,
            key="golden-multiarm",
            variants=("control", "v2", "v3"),
            effects={
                "v2": TrueEffect(conversion_lift=0.15),
                "v3": TrueEffect(order_value_lift=-0.1),
            },
            start=START,
            unit_prefix="m",
            seed=13,
        ),
    ]
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / "experiments.json").write_text(
        json.dumps([s.experiment.to_dict() for s in sims], indent=1), encoding="utf-8"
    )
    ex_cols = ["unit_id", "experiment", "variant", "timestamp", "platform", "country"]
    ev_cols = ["unit_id", "event_type", "value", "timestamp"]
    for name, frames in (
        ("exposures", [s.exposures[ex_cols] for s in sims]),
        ("events", [s.events[ev_cols] for s in sims]),
    ):
        with gzip.open(DATA / f"{name}.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as fh:
            for frame in frames:
                for row in frame.to_dict(orient="records"):
                    row["timestamp"] = row["timestamp"].isoformat()
                    if row.get("value") is not None and row["value"] != row["value"]:
                        row["value"] = None
                    fh.write(json.dumps(row) + "\n")


def main() -> None:
    from abkit.testing.postgres import TemporaryPostgres

    simulate()
    outputs: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp_name, TemporaryPostgres() as pg:
        tmp = Path(tmp_name)
        metrics_path = tmp / "metrics.toml"
        metrics_path.write_text(METRICS_TOML, encoding="utf-8")
        urls = {
            "sqlite": f"sqlite:///{tmp / 'g.db'}",
            "duckdb": f"duckdb:///{tmp / 'g.duckdb'}",
            "postgresql": pg.create_database(),
        }
        for dialect, url in urls.items():
            load_into(url, tmp)
            # Reports first: their kernels must not meet a DuckDB file this process holds.
            for case in CASES:
                if case.report:
                    out = tmp / f"{dialect}-{case.name}.html"
                    outputs[f"{dialect}/{case.name}/report"] = render_case(
                        case, url, metrics_path, out
                    )
            for case in CASES:
                outputs[f"{dialect}/{case.name}/analyze"] = run_case(case, url, metrics_path)
            print(dialect, "done", flush=True)
    (DATA / "outputs.json.gz").write_bytes(
        gzip.compress(json.dumps(outputs, sort_keys=True).encode())
    )


if __name__ == "__main__":
    main()
