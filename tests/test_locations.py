"""One rule for the default store, shared by every command, notebook and report."""

from __future__ import annotations

import pytest

from abkit.errors import ConfigError
from abkit.locations import default_store_url


def test_one_rule_for_the_default_store(tmp_path, monkeypatch):
    monkeypatch.delenv("ABKIT_DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match=r"looked for abkit\.db and abkit-demo\.db") as info:
        default_store_url(cwd=tmp_path)
    assert info.value.location.field == "db" and "--db" in str(info.value)
    # A command that writes creates ./abkit.db.
    assert default_store_url(cwd=tmp_path, create=True) == f"sqlite:///{tmp_path / 'abkit.db'}"
    (tmp_path / "abkit-demo.db").touch()
    assert default_store_url(cwd=tmp_path) == f"sqlite:///{tmp_path / 'abkit-demo.db'}"
    (tmp_path / "abkit.db").touch()  # the user's own store wins over the demo's
    assert default_store_url(cwd=tmp_path) == f"sqlite:///{tmp_path / 'abkit.db'}"
    monkeypatch.setenv("ABKIT_DATABASE_URL", "postgresql://env/db")
    assert default_store_url(cwd=tmp_path) == "postgresql://env/db"
    assert default_store_url("sqlite:///flag.db", cwd=tmp_path) == "sqlite:///flag.db"


def test_a_notebook_folder_finds_the_demo_store_one_level_up(tmp_path, monkeypatch):
    monkeypatch.delenv("ABKIT_DATABASE_URL", raising=False)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (tmp_path / "abkit-demo.db").touch()
    with pytest.raises(ConfigError, match="looked for"):
        default_store_url(cwd=notebooks)
    found = default_store_url(cwd=notebooks, search_parent=True)
    assert found == f"sqlite:///{(tmp_path / 'abkit-demo.db').resolve()}"
