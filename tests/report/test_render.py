"""Notebook execution on this interpreter, and the offline HTML export."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest

from abkit.errors import ConfigError
from abkit.report.params import inject_parameters
from abkit.report.render import (
    ReportError,
    check_offline,
    execute_notebook,
    export_html,
    render_report,
    template_path,
)

HOSTILE = "<b>x</b>'\"\n__import__('os').system('touch {marker}') # </pre><script>alert(1)</script>"


def _nb(*sources: str, params: str = "name = 'a'") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def test_kernel_is_this_interpreter_without_any_kernelspec(tmp_path, monkeypatch):
    # A fresh machine: no user or system kernelspecs, an empty HOME.
    for var in (
        "HOME",
        "JUPYTER_PATH",
        "JUPYTER_DATA_DIR",
        "JUPYTER_RUNTIME_DIR",
        "JUPYTER_CONFIG_DIR",
    ):
        monkeypatch.setenv(var, str(tmp_path / "empty"))
    nb = _nb("import sys, abkit\nprint(sys.executable)\nprint(abkit.__file__)")
    execute_notebook(nb, cwd=tmp_path)
    out = nb.cells[1].outputs[0]["text"].splitlines()
    assert Path(out[0]).resolve() == Path(sys.executable).resolve()
    import abkit

    assert Path(out[1]).resolve() == Path(abkit.__file__).resolve()


def test_failing_cell_is_one_report_error(tmp_path):
    nb = _nb("x = 1", "raise ValueError('the data is odd')")
    with pytest.raises(ReportError, match=r"failed in cell 2: ValueError: the data is odd"):
        execute_notebook(nb, cwd=tmp_path, template_name="t")


def test_injected_code_never_runs_and_is_escaped(tmp_path):
    marker = tmp_path / "pwned"
    hostile = HOSTILE.format(marker=marker)
    nb = _nb(
        "import html\nfrom IPython.display import HTML, Javascript, display\n"
        "display(Javascript('alert(1)'))\n"
        "HTML('<p class=\"who\">' + html.escape(name) + '</p>')",
        "print(name)",
        "import sys\nprint('careful', file=sys.stderr)",
    )
    inject_parameters(nb, {"name": hostile})
    execute_notebook(nb, cwd=tmp_path)
    assert not marker.exists()
    page = export_html(nb, hide_code=True, title=hostile)
    assert not marker.exists()
    assert "<script" not in page.lower()
    assert check_offline(page) == []
    assert "&lt;b&gt;x&lt;/b&gt;" in page  # escaped in the HTML output and in <title>
    assert "<b>x</b>" not in page
    assert "alert(1)" not in page.replace("&lt;script&gt;alert(1)&lt;/script&gt;", "")
    assert "careful" not in page  # stderr is not shown in a code-hidden report
    assert "__import__" in page  # shown as text, escaped
    # The analyst view shows the code (highlighted, so escaped) and stderr.
    analyst = export_html(nb, hide_code=False, title="t")
    assert "careful" in analyst and "<script" not in analyst.lower()
    assert check_offline(analyst) == []


@pytest.mark.parametrize(
    ("snippet", "bad"),
    [
        ("<script>1</script>", True),
        ('<link rel="stylesheet" href="a.css">', True),
        ('<img src="https://cdn.example.com/a.png">', True),
        ('<img src="//cdn.example.com/a.png">', True),
        ('<img src="local.png">', True),  # not embedded: the file would be missing
        ("<style>@import 'x.css';</style>", True),
        ("<style>body{background:url(https://x/y.png)}</style>", True),
        ('<div style="background:url(http://x/y.png)"></div>', True),
        ('<img src="data:image/png;base64,AAAA" onload="x()">', True),
        ('<iframe src="about:blank"></iframe>', True),
        ('<svg><image xlink:href="https://x.example/y.png"/></svg>', True),
        ('<svg><use href="https://x.example/s.svg#a"/></svg>', True),
        ('<meta http-equiv="refresh" content="0;url=https://x.example/">', True),
        ('<video poster="https://x.example/p.png"></video>', True),
        ('<img srcset="https://x.example/a.png 2x">', True),
        ('<a href=" JavaScript:alert(1)">click</a>', True),
        ('<a href="java\tscript:alert(1)">click</a>', True),
        ('<img src="data:image/png;base64,AAAA" alt="ok">', False),
        ('<a href="https://example.com">a link is not a load</a>', False),
        ("<p>&lt;script src=https://x&gt; url(http://x) @import</p>", False),
        ('<a href="#section">anchor</a>', False),
    ],
)
def test_check_offline(snippet, bad):
    assert bool(check_offline(f"<html><body>{snippet}</body></html>")) is bad


def test_templates_ship_inside_the_package():
    for name in ("executive", "deep-dive", "planner"):
        path = template_path(name)
        assert path.is_file() and "abkit/report/templates" in path.as_posix()
        nb = nbformat.read(path, as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    with pytest.raises(ConfigError, match="unknown report template"):
        template_path("nope")


def test_notebooks_dir_links_to_the_packaged_templates():
    root = Path(__file__).resolve().parents[2]
    for name in ("executive", "deep-dive", "planner"):
        packaged = template_path(name)
        link = root / "notebooks" / packaged.name
        assert link.is_symlink(), f"{link} must be a symlink (one copy of each template)"
        assert link.resolve() == packaged.resolve()


def test_planner_report_renders_offline(tmp_path, chromium):
    from chromium import load_page, screenshot_stats

    out = tmp_path / "plan.html"
    report = render_report(
        template="planner",
        out=out,
        parameters={"baseline": 0.05, "mde": 0.1, "daily_traffic": 5000},
    )
    assert report.path == out and os.fspath(report) == str(out)
    page = out.read_text(encoding="utf-8")
    assert check_offline(page) == []
    from abkit.stats.planning import plan_proportion

    expected = plan_proportion(0.05, mde=0.1, relative=True, power=0.8, daily_traffic=5000)
    assert f'data-n-total="{expected.n_total}"' in page
    assert f"{expected.n_total:,} units" in page
    load = load_page(out, binary=chromium)
    assert load.errors == [] and load.network_requests == []
    stats = screenshot_stats(load.screenshot)
    assert stats["width"] >= 1000 and stats["height"] > 1000 and stats["stddev"] > 5
