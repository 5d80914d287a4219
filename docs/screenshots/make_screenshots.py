"""Regenerate the screenshots of docs/reports.md: four executive reports and the index page.

    .venv/bin/python docs/screenshots/make_screenshots.py [--keep DIR]

Four experiments, one per state a reader meets, are simulated with known effects
(:func:`abkit.simulate.simulate_experiment`) into one SQLite store, rendered
with ``abkit report`` and photographed by headless Chromium (the DevTools helper of the
report tests) at desktop width (1280 px) and phone width (390 px, touch; drawn at 2x
pixels and stored at 1x):

* ``ship``: a 10% conversion lift with 40,000 users;
* ``roll back``: a conversion lift, and 25% more client errors (a guardrail);
* ``keep running``: a 10% lift planned for, 8,000 users so far (about 2 more weeks);
* ``cannot finish``: a 0.5% lift planned at 5%, 3,000 users in two weeks (over a year).

Takes about two minutes on a shared 2-core machine. Needs Chromium.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "report"))

METRICS = """\
[[metric]]
builtin = "conversion_rate"
role = "primary"
mde = {mde}

[[metric]]
builtin = "revenue_per_user"
currency = "USD"

[[metric]]
builtin = "orders_per_user"

[[metric]]
name = "errors_per_user"
type = "mean"
event = "error"
aggregate = "count"
window = "7d"
direction = "lower"
role = "guardrail"
"""

# key, description, true effect, users, days, planned detectable effect
CASES = (
    (
        "ranker-v2",
        "Search ranking: current model against the new two-tower ranker.",
        {"conversion_lift": 0.10},
        40_000,
        14,
        0.10,
    ),
    (
        "ranker-v3-large",
        "Search ranking: the large transformer ranker (slower responses).",
        {"conversion_lift": 0.06, "guardrail_effect": 0.25},
        40_000,
        14,
        0.10,
    ),
    (
        "homepage-carousel",
        "Home page: a personalised carousel above the fold.",
        {"conversion_lift": 0.10},
        8_000,
        7,
        0.10,
    ),
    (
        "checkout-copy",
        "Checkout: shorter button copy on the payment step.",
        {"conversion_lift": 0.005},
        3_000,
        14,
        0.05,
    ),
)


def build(workdir: Path) -> tuple[str, list[tuple[str, Path]]]:
    from abkit.assignment.config import Experiment, Variant
    from abkit.simulate import TrueEffect, load_simulation, simulate_experiment
    from abkit.store.store import open_store

    db = f"sqlite:///{workdir / 'screens.db'}"
    start = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    experiments = []
    for i, (key, description, effect, users, days, mde) in enumerate(CASES):
        begin = start - timedelta(days=days + 8)
        sim = simulate_experiment(
            users,
            key=key,
            variants=("control", "treatment"),
            effects=TrueEffect(**effect),
            days=days,
            start=begin,
            seed=11 + i,
            impressions=0.0,
        )
        load_simulation(sim, db)
        (workdir / f"{key}.metrics.toml").write_text(METRICS.format(mde=mde), encoding="utf-8")
        experiments.append(
            Experiment(
                key=key,
                variants=(
                    Variant("control", 0.5, {"model": "current"}),
                    Variant("treatment", 0.5, {"model": "candidate"}),
                ),
                description=description,
                hypothesis="The candidate raises the share of visitors who buy within 7 days.",
                owner="Growth team",
                status="running",
                start=begin,
            )
        )
    store = open_store(db)
    store.register_experiments(experiments)
    store.close()
    reports = []
    for key, *_ in CASES:
        out = workdir / "reports" / f"{key}.html"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "abkit",
                "report",
                "--db",
                db,
                "--experiment",
                key,
                "--metrics",
                str(workdir / f"{key}.metrics.toml"),
                "--currency",
                "USD",
                "--period",
                "month",
                "--impact-metric",
                "revenue_per_user",
                "--value",
                "errors_per_user=0.40",
                "--out",
                str(out),
                "--index",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=workdir,
        )
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        reports.append((key, out))
    return db, reports


def shoot(path: Path, name: str) -> list[Path]:
    from chromium import load_page
    from PIL import Image

    written = []
    for suffix, width, mobile in (("desktop", 1280, False), ("phone", 390, True)):
        load = load_page(path, width=width, height=844, mobile=mobile)
        if load.errors or load.network_requests:
            raise SystemExit(f"{path}: {load.errors or load.network_requests}")
        image = Image.open(io.BytesIO(load.screenshot)).convert("RGB")
        if mobile:  # drawn at 2x like a phone; stored at 1x (390 px wide) to stay small
            image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
        # 256 colours keep text sharp and the files small enough to commit.
        target = HERE / f"{name}-{suffix}.png"
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="keep the store and reports here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="abkit-shots-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        _, reports = build(workdir)
        names = dict(
            zip(
                [c[0] for c in CASES],
                ("ship", "roll-back", "keep-running", "cannot-finish"),
                strict=True,
            )
        )
        for key, path in reports:
            for target in shoot(path, names[key]):
                print(target.relative_to(ROOT))
        for target in shoot(workdir / "reports" / "index.html", "index"):
            print(target.relative_to(ROOT))


if __name__ == "__main__":
    main()
