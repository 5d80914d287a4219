"""Make the from-spec reference implementation importable as ``spec_reference``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _no_leaked_exposure_hooks():
    """Every test starts and ends without registered exposure hooks."""
    from abkit.assignment.exposure import clear_exposure_hooks

    clear_exposure_hooks()
    yield
    clear_exposure_hooks()
