"""Fixtures of the report tests: headless Chromium (required in CI, skipped elsewhere)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the DevTools helper next to the tests

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium binary; in CI a missing one fails instead of skipping."""
    from chromium import find_chromium

    binary = find_chromium()
    if binary is None:
        if IN_CI:
            pytest.fail("chromium is required in CI (scripts/system-deps.sh installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return binary
