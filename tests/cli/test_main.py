"""The CLI skeleton: help, version, and errors as one line with a non-zero exit."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from abkit import __version__
from abkit.cli import main as cli_main
from abkit.errors import DataError


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abkit", *args], capture_output=True, text=True, check=False
    )


def test_version_prints_package_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"abkit {__version__}"


def test_help_lists_every_installed_command():
    result = run_cli("--help")
    assert result.returncode == 0
    installed = [m for m in cli_main.COMMAND_MODULES if importlib.util.find_spec(m) is not None]
    for module_name in installed:
        assert module_name.rsplit(".", 1)[1] in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def failing_command(monkeypatch: pytest.MonkeyPatch):
    """Register a throw-away command whose handler raises what the test asks for."""
    raised: list[BaseException] = []

    def register(subparsers):
        parser = subparsers.add_parser("explode")
        parser.set_defaults(handler=lambda args: (_ for _ in ()).throw(raised[0]))

    real_import = cli_main.importlib.import_module

    class Fake:
        pass

    fake = Fake()
    fake.register = register  # type: ignore[attr-defined]
    monkeypatch.setattr(cli_main, "COMMAND_MODULES", ("fake.explode",))
    monkeypatch.setattr(
        cli_main.importlib,
        "import_module",
        lambda name: fake if name == "fake.explode" else real_import(name),
    )
    return raised


def test_user_error_is_one_located_line(failing_command, capsys):
    failing_command.append(DataError("value is not a number", file="e.csv", row=7, field="value"))
    code = cli_main.main(["explode"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "abkit explode: error: e.csv, row 7, field 'value': value is not a number\n"


def test_unexpected_error_is_one_line_without_traceback(failing_command, capsys):
    failing_command.append(RuntimeError("boom"))
    code = cli_main.main(["explode"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert "RuntimeError: boom" in err
    assert "Traceback" not in err


def test_debug_flag_reraises(failing_command):
    failing_command.append(RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        cli_main.main(["--debug", "explode"])


def test_missing_extra_names_the_smallest_extra(failing_command, capsys):
    failing_command.append(ModuleNotFoundError("No module named 'scipy'", name="scipy"))
    code = cli_main.main(["explode"])
    err = capsys.readouterr().err
    assert code == 3
    assert "pip install 'abkit[analysis]'" in err
    assert "abkit[all]" not in err


def test_driver_error_is_one_line_without_sql(failing_command, capsys):
    from sqlalchemy.exc import OperationalError

    driver = RuntimeError(
        "server closed the connection unexpectedly\n\tThis probably means the server "
        "terminated abnormally\n\tbefore or while processing the request."
    )
    failing_command.append(OperationalError("INSERT INTO abkit_events ...", {"a": 1}, driver))
    code = cli_main.main(["explode"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert "server closed the connection unexpectedly" in err
    assert "INSERT" not in err and "sqlalche.me" not in err


def test_closed_pipe_ends_quietly(tmp_path):
    """``abkit ... | head -n 1``: the reader leaves early; no error, no traceback."""
    registry = tmp_path / "experiments.toml"
    registry.write_text(
        '[[experiments]]\nkey = "e"\nvariants = [{name = "a"}, {name = "b"}]\n', encoding="utf-8"
    )
    ids = [f"user-{i}" for i in range(20_000)]
    command = [
        sys.executable,
        "-m",
        "abkit",
        "assign",
        "--experiments",
        str(registry),
        "--experiment",
        "e",
        *ids,
    ]
    producer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert producer.stdout is not None
    producer.stdout.readline()
    producer.stdout.close()  # what head does after its first line
    _, err = producer.communicate(timeout=60)
    assert b"Traceback" not in err and b"unexpected error" not in err, err.decode()
    assert producer.returncode in (0, 141)
