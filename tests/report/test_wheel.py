"""A wheel install renders reports: the templates ship inside the package.

Builds the wheel from this checkout, installs it into an empty directory, and renders the
executive report from there in a directory with no repository in sight, so a template
missing from the package data fails here rather than on a user's machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    return next(out.glob("abkit-*.whl"))


def test_wheel_contains_every_template(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = sorted((ROOT / "abkit" / "report" / "templates").rglob("*"))
    expected = {
        p.relative_to(ROOT).as_posix()
        for p in templates
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert expected, "no templates found in the checkout"
    assert expected <= names, sorted(expected - names)
    # the notebooks/ links point at the packaged copies, so nothing else needs shipping
    for link in (ROOT / "notebooks").glob("*.ipynb"):
        assert link.resolve().relative_to(ROOT).as_posix() in names


def test_installed_wheel_renders_the_executive_report(wheel, tmp_path):
    from abkit.demo import run_demo

    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    data = run_demo(
        "ship", db=tmp_path / "demo.db", reports_dir=tmp_path, n_units=4_000, render=False
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    code = (
        "import sys, abkit\n"
        "assert abkit.__file__.startswith(sys.argv[1]), abkit.__file__\n"
        "from abkit import render_report\n"
        "report = render_report(sys.argv[2], sys.argv[3], metrics=sys.argv[4], out='r.html')\n"
        "print(report.path)\n"
    )
    # The kernel inherits PYTHONPATH, so the notebook imports the installed copy too.
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(site),
            data.db_url,
            data.experiment,
            str(tmp_path / f"{data.experiment}.metrics.toml"),
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    html = (workdir / "r.html").read_text(encoding="utf-8")
    assert data.experiment in html and "Recommendation" in html
