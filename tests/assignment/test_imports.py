"""The assignment core imports nothing heavy and runs with only mmh3 installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import mmh3

import abkit

HEAVY = ("numpy", "pandas", "scipy", "sqlalchemy", "statsmodels", "pyarrow")


def test_from_abkit_import_assign_loads_no_heavy_packages():
    code = (
        "import sys, json\n"
        "from abkit import assign, assign_many, Experiment, add_exposure_hook, ExposureRecord\n"
        "e = Experiment('k', variants=['a', 'b'], targeting={'attr': 'ua', 'regex': 'bot'})\n"
        "assign(e, 'u', {'ua': 'x'}); assign_many(e, ['u1', 'u2'])\n"
        "from abkit import load_experiments, diff_experiments\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(res.stdout) == []


def test_works_with_only_the_core_installed(tmp_path: Path):
    """Run under ``python -I -S`` with a sys.path of the stdlib, abkit and mmh3's .so only."""
    pkg_dir = tmp_path / "pkg"
    pkg_dir.mkdir()
    (pkg_dir / "abkit").symlink_to(Path(abkit.__file__).parent, target_is_directory=True)
    ext_dir = tmp_path / "ext"
    ext_dir.mkdir()
    so = Path(mmh3.__file__)
    (ext_dir / so.name).symlink_to(so)
    if sys.version_info < (3, 11):  # the core's TOML reader there: a declared dependency
        import tomli

        (ext_dir / "tomli").symlink_to(Path(tomli.__file__).parent, target_is_directory=True)
    registry = tmp_path / "reg.toml"
    registry.write_text(
        '[[experiments]]\nkey = "k"\ntraffic = 0.5\n'
        '[[experiments.variants]]\nname = "a"\n[[experiments.variants]]\nname = "b"\n'
    )
    stdlib = [
        p
        for p in sys.path
        if p
        and not p.endswith("site-packages")
        and Path(p).exists()
        and p.startswith(sys.base_prefix)
    ]
    stdlib = stdlib or [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]]
    code = (
        "import sys\n"
        f"sys.path[:] = {[*stdlib, str(pkg_dir), str(ext_dir)]!r}\n"
        "for name in ('numpy', 'pandas', 'scipy', 'sqlalchemy', 'hypothesis'):\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ImportError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit('environment not isolated: ' + name)\n"
        "from abkit import assign, assign_many, load_experiments, diff_experiments\n"
        f"reg = load_experiments({str(registry)!r})\n"
        "a = assign(reg['k'], 'user-1')\n"
        "b = assign_many(reg['k'], ['user-1', 'x'])\n"
        "assert b[0] == a\n"
        "d = diff_experiments(reg['k'], reg['k'], sample=1000)\n"
        "assert d.ok\n"
        "print(a.variant, a.in_experiment, a.bucket)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    res = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr
    from abkit.assignment import Experiment, assign

    here = assign(Experiment("k", variants=["a", "b"], traffic=0.5), "user-1")
    assert res.stdout.split() == [here.variant, str(here.in_experiment), str(here.bucket)]


def test_every_public_assignment_name_resolves():
    names = [n for n, mod in abkit._LAZY.items() if mod.startswith("abkit.assignment")]
    assert set(names) >= {
        "Experiment",
        "Variant",
        "Namespace",
        "Holdout",
        "Assignment",
        "assign",
        "assign_many",
        "ExposureRecord",
        "add_exposure_hook",
        "remove_exposure_hook",
        "load_experiments",
        "diff_experiments",
    }
    for name in names:
        obj = getattr(abkit, name)
        assert obj.__module__ == abkit._LAZY[name], name
