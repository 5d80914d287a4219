"""Every README code block marked to run after ``make demo`` runs as written.

A block runs when the line before its opening fence is ``<!-- runs-after-demo -->``. The
demo is run once into a temporary folder (as ``make demo`` would into the clone, with
``.venv`` linked to this interpreter's environment), then each Python block runs in this
interpreter and each shell block in bash, both from that folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- runs-after-demo -->"
FENCE = re.compile(r"^```(\w+)\s*$")


def runnable_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line number, language, code) of every marked block."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening and i > 0 and lines[i - 1].strip() == MARKER:
            end = i + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            blocks.append((i + 1, opening.group(1), "\n".join(lines[i + 1 : end]) + "\n"))
            i = end
        i += 1
    return blocks


BLOCKS = runnable_blocks(README.read_text(encoding="utf-8"))


def test_blocks_are_found() -> None:
    assert len(BLOCKS) >= 3
    assert {lang for _, lang, _ in BLOCKS} <= {"python", "bash"}


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("after-demo")
    # The README writes commands as a reader of a fresh clone runs them: .venv/bin/abkit.
    (folder / ".venv").symlink_to(Path(sys.executable).parent.parent)
    done = subprocess.run(
        [sys.executable, "-m", "abkit", "demo", "--scenario", "all"],  # what `make demo` runs
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return folder


@pytest.mark.parametrize(("line", "language", "code"), BLOCKS, ids=[f"L{b[0]}" for b in BLOCKS])
def test_block_runs_after_demo(demo_folder: Path, line: int, language: str, code: str) -> None:
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    command = (
        [sys.executable, "-c", code]
        if language == "python"
        else ["bash", "-euo", "pipefail", "-c", code]
    )
    done = subprocess.run(
        command, cwd=demo_folder, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"README line {line}:\n{code}\nstderr:\n{done.stderr[-3000:]}"
