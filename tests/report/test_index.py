"""abkit.report.index: every experiment on one offline page, from the reports' own data."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import fakes
import pytest
from fakes import RAW, T

from abkit.errors import ConfigError
from abkit.report import sections as S
from abkit.report.adapt import from_analysis
from abkit.report.index import collect, entry_from_report, write_index
from abkit.report.render import check_offline

NOW = datetime(2026, 2, 1, 12, 0, tzinfo=timezone.utc)


def _report(folder, name: str, model) -> None:
    """A minimal report file: the parts the index reads (the embedded data)."""
    body = S.title_block(model).html + S.report_data(model).html
    (folder / name).write_text(f"<!DOCTYPE html><html><body>{body}</body></html>", encoding="utf-8")


def test_index_lists_every_report_and_every_registered_experiment(tmp_path):
    shipped = from_analysis(fakes.result("ship"))
    stuck = from_analysis(fakes.result("cannot finish", conversion_lift=0.005))
    _report(tmp_path, "a.html", shipped)
    _report(tmp_path, "b.html", stuck)
    (tmp_path / "notes.html").write_text("<html>not a report</html>", encoding="utf-8")
    entries = collect(
        tmp_path, registered=[("checkout-$5-test", "running"), ("draft-one", "draft")]
    )
    # One entry per experiment key: the reports win over the registry.
    assert [(x.key, x.link) for x in entries][-1] == ("draft-one", None)
    by_link = {x.link: x for x in entries if x.link}
    assert set(by_link) == {"a.html"}  # b.html has the same key: first file wins
    assert by_link["a.html"].state == "ship" and by_link["a.html"].money is not None


def test_index_page_is_offline_escaped_and_links_each_report(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    model = fakes.hostile_model()
    _report(reports, "h.html", model)
    _report(reports, "s.html", from_analysis(fakes.result("ship"), generated_at=NOW))
    path = write_index(reports, registered=[(f"new {T}", "draft")], now=NOW)
    page = path.read_text(encoding="utf-8")
    assert path == reports / "index.html"
    assert check_offline(page) == [] and "<script" not in page.lower()
    assert RAW not in page
    assert '<a href="s.html">checkout-$5-test</a>' in page
    assert 'href="h.html"' in page and "no report yet" in page
    assert "Ship it" in page and "Roll back" in page
    assert re.search(r"\+\$[\d.,]+K? per month", page)  # money with its currency
    assert "Content-Security-Policy" in page and "abkit report --index" in page
    # Regenerating replaces the page it wrote, and skips itself when reading the folder.
    again = write_index(reports, now=NOW)
    assert (
        again == path and "index.html" not in again.read_text(encoding="utf-8").split('href="')[1]
    )


def test_links_are_relative_to_where_the_index_is_written(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    _report(reports, "s.html", from_analysis(fakes.result("ship")))
    out = tmp_path / "site" / "all.html"
    out.parent.mkdir()
    page = write_index(reports, out=out, now=NOW).read_text(encoding="utf-8")
    assert 'href="../reports/s.html"' in page


def test_index_refuses_a_missing_folder_and_a_foreign_file(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder of reports"):
        write_index(tmp_path / "nope")
    (tmp_path / "index.html").write_text("my own page", encoding="utf-8")
    with pytest.raises(ConfigError, match="pass --force"):
        write_index(tmp_path)
    assert write_index(tmp_path, force=True).read_text(encoding="utf-8").startswith("<!DOCTYPE")


def test_a_file_that_is_not_a_report_gives_no_entry(tmp_path):
    path = tmp_path / "x.html"
    path.write_bytes(b"\xff\xfe not utf-8")
    assert entry_from_report(path) is None
