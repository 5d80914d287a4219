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
    # abkit._lazy (the PEP 562 helper) and abkit.extras (what it says when an extra is
    # missing) are stdlib-only.
    assert out.stdout.strip() == "['abkit._lazy', 'abkit._version', 'abkit.extras']"


def test_a_name_whose_extra_is_missing_says_which_extra_to_install():
    code = (
        "import sys\n"
        "sys.modules['sqlalchemy'] = None  # as if abkit[store] were not installed\n"
        "try:\n"
        "    from abkit import Tracker\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "abkit.Tracker needs the Python package 'sqlalchemy'" in out.stdout
    assert "pip install 'abkit[store]'" in out.stdout


def test_top_level_exports_the_metric_factories_and_the_interval():
    from abkit.metrics import Metric, load_metrics, mean, proportion, quantile, ratio
    from abkit.results import Interval

    assert (abkit.Metric, abkit.proportion, abkit.mean, abkit.ratio, abkit.quantile) == (
        Metric,
        proportion,
        mean,
        ratio,
        quantile,
    )
    assert abkit.load_metrics is load_metrics and abkit.Interval is Interval
