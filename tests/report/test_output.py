"""abkit.report.output: planted links are never followed, the store is never overwritten."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from abkit.errors import ConfigError
from abkit.report import render
from abkit.report.output import check_destination, database_file, looks_like, write_atomic

HTML = b"<!DOCTYPE html><html><body>report</body></html>"


def _render_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """render_report without a kernel or a store: the write path is what is under test."""
    monkeypatch.setattr(render, "execute_notebook", lambda nb, **kw: nb)


def test_write_atomic_replaces_a_planted_link_instead_of_following_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "r.html"
    out.symlink_to(victim)
    write_atomic(out, HTML)
    assert victim.read_text() == "precious"
    assert not out.is_symlink() and out.read_bytes() == HTML
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "victim.txt"]


def test_write_atomic_ignores_a_link_at_the_old_temporary_name(tmp_path):
    """The attack of issue 13: a link at OUT.tmp; the temporary name is unique now."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "r.html.tmp").symlink_to(victim)
    write_atomic(tmp_path / "r.html", HTML)
    assert victim.read_text() == "precious"
    assert (tmp_path / "r.html").read_bytes() == HTML


def test_write_atomic_gives_umask_permissions_and_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "r.html"
    write_atomic(out, HTML)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(ConfigError, match="cannot write the report") as info:
        write_atomic(tmp_path / "missing-folder" / "r.html", HTML, option="save_notebook")
    assert info.value.location.field == "save_notebook"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_the_store_is_refused_even_with_force(tmp_path):
    db = tmp_path / "abkit.db"
    sqlite3.connect(db).close()
    db.write_bytes(b"SQLite format 3\x00" + bytes(100))
    for force in (False, True):
        with pytest.raises(ConfigError, match="is the database this report reads"):
            check_destination(db, kind="html", store=db, force=force)
    link = tmp_path / "link.html"
    link.symlink_to(db)
    with pytest.raises(ConfigError, match="is the database"):
        check_destination(link, kind="html", store=db, force=True)


def test_an_existing_file_of_another_kind_needs_force(tmp_path):
    other = tmp_path / "notes.html"
    other.write_text("meeting notes, not a report")
    with pytest.raises(ConfigError, match="pass --force") as info:
        check_destination(other, kind="html", store=None, force=False)
    assert info.value.location.file == str(other)
    assert check_destination(other, kind="html", store=None, force=True) == other
    report = tmp_path / "old.html"
    report.write_bytes(b"\xef\xbb\xbf\n  " + HTML)
    assert check_destination(report, kind="html", store=None, force=False) == report
    assert check_destination(tmp_path / "new.html", kind="html", store=None, force=False)
    with pytest.raises(ConfigError, match="is a folder"):
        check_destination(tmp_path, kind="html", store=None, force=True)


def test_looks_like_tells_reports_and_notebooks_from_other_files(tmp_path):
    import nbformat

    nb = tmp_path / "a.ipynb"
    nb.write_text(nbformat.writes(nbformat.v4.new_notebook()))
    data = tmp_path / "b.json"
    data.write_text('{"rows": [1, 2]}')
    assert looks_like(nb, "notebook") and not looks_like(nb, "html")
    assert not looks_like(data, "notebook")
    page = tmp_path / "c.html"
    page.write_bytes(b"<HTML><body></body></HTML>")
    assert looks_like(page, "html") and not looks_like(page, "notebook")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///a/b.db", Path("a/b.db")),
        ("sqlite:////abs/b.db", Path("/abs/b.db")),
        ("duckdb:///x.duckdb", Path("x.duckdb")),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://u@h/db", None),
        ("not a url", None),
        (None, None),
    ],
)
def test_database_file(url, expected):
    assert database_file(url) == expected


def test_render_report_never_writes_through_planted_links(tmp_path, monkeypatch):
    _render_offline(monkeypatch)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "r.html"
    (tmp_path / "r.html.tmp").symlink_to(victim)
    (tmp_path / "r.ipynb").symlink_to(victim)
    # The notebook path is a link to a non-notebook: refused before anything is written.
    with pytest.raises(ConfigError, match="not a notebook") as info:
        render.render_report(template="planner", out=out, save_notebook=True)
    assert info.value.location.field == "save_notebook"
    assert not out.exists()
    # With --force the link itself is replaced, its target is untouched.
    done = render.render_report(template="planner", out=out, save_notebook=True, force=True)
    assert victim.read_text() == "precious"
    assert done.notebook_path == tmp_path / "r.ipynb"
    assert not done.notebook_path.is_symlink() and looks_like(done.notebook_path, "notebook")
    assert looks_like(out, "html")


def test_cli_refuses_the_store_as_output_with_exit_2(tmp_path):
    db = tmp_path / "abkit.db"
    sqlite3.connect(db).execute("create table t(x)").connection.close()
    before = db.read_bytes()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "abkit",
            "report",
            "--db",
            f"sqlite:///{db}",
            "--template",
            "planner",
            "--out",
            str(db),
            "--force",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "is the database this report reads" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert db.read_bytes() == before
