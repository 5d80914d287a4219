"""The lazy public API: every advertised name resolves, and only on first use."""

import subprocess
import sys

import abkit


def test_every_public_name_resolves():
    unresolved = [name for name in abkit.__all__ if getattr(abkit, name, None) is None]
    assert unresolved == []


def test_unknown_name_is_an_attribute_error():
    try:
        abkit.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("abkit.no_such_name should not exist")


def test_importing_abkit_loads_no_submodule():
    code = "import sys, abkit; print(sorted(m for m in sys.modules if m.startswith('abkit.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['abkit._version']"
