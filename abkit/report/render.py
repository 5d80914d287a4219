"""Render a notebook template to one self-contained, offline HTML file.

Steps of :func:`render_report`:

1. load the template (shipped in ``abkit/report/templates``, or a path to any ``.ipynb``);
2. inject the parameters *as data* (:mod:`abkit.report.params`);
3. execute it with nbclient on a kernel that runs **this** interpreter
   (``sys.executable -m ipykernel_launcher``): no kernelspec needs to be installed, and
   the kernel sees exactly the packages of the running virtual environment;
4. export it with nbconvert through abkit's own template
   (``templates/nbconvert/abkit``), which emits no ``<script>`` and loads nothing from a
   network, then check that promise on the produced HTML before writing it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

from abkit.errors import AbkitError, ConfigError
from abkit.report.output import check_destination, database_file, write_atomic
from abkit.report.params import inject_parameters

__all__ = [
    "TEMPLATES",
    "RenderedReport",
    "ReportError",
    "check_offline",
    "execute_notebook",
    "export_html",
    "load_template",
    "render_report",
    "template_path",
]

MAX_REPORT_BYTES = 2_000_000


class ReportError(AbkitError):
    """A report could not be rendered (a template cell failed, or the HTML is unsafe)."""


@dataclass(frozen=True)
class TemplateInfo:
    """A shipped notebook template."""

    name: str
    filename: str
    hide_code: bool
    title: str
    needs_experiment: bool = True


TEMPLATES: dict[str, TemplateInfo] = {
    "executive": TemplateInfo("executive", "executive_report.ipynb", True, "Experiment report"),
    "deep-dive": TemplateInfo("deep-dive", "analysis_deep_dive.ipynb", False, "Analysis deep-dive"),
    "planner": TemplateInfo(
        "planner", "sample_size_planner.ipynb", False, "Sample-size plan", needs_experiment=False
    ),
}
_ALIASES = {
    "exec": "executive",
    "executive-report": "executive",
    "analysis": "deep-dive",
    "deep_dive": "deep-dive",
    "deepdive": "deep-dive",
    "sample-size": "planner",
    "sample_size": "planner",
}


@dataclass(frozen=True)
class RenderedReport:
    """Where a report was written and what it cost. Usable as a path (``os.fspath``)."""

    path: Path
    template: str
    size_bytes: int
    seconds: float
    execute_seconds: float
    notebook_path: Path | None = None

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def _templates_dir() -> Path:
    return Path(str(resources.files("abkit.report").joinpath("templates")))


def template_path(name: str) -> Path:
    """Path of a shipped template by name (``executive``, ``deep-dive``, ``planner``)."""
    key = _ALIASES.get(name, name)
    info = TEMPLATES.get(key)
    if info is None:
        raise ConfigError(
            f"unknown report template {name!r}; choose one of {', '.join(TEMPLATES)} "
            "or give a path to an .ipynb file",
            field="template",
        )
    return _templates_dir() / info.filename


def _resolve_template(template: str | os.PathLike[str]) -> tuple[Path, TemplateInfo]:
    text = os.fspath(template)
    key = _ALIASES.get(text, text)
    if key in TEMPLATES:
        return template_path(key), TEMPLATES[key]
    path = Path(text)
    if path.suffix == ".ipynb":
        if not path.is_file():
            raise ConfigError(f"notebook template {text!r} does not exist", field="template")
        return path, TemplateInfo(path.stem, path.name, False, path.stem, needs_experiment=False)
    return template_path(text), TEMPLATES[key]  # raises the "unknown template" error


def load_template(template: str | os.PathLike[str]) -> Any:
    """The template notebook as an ``nbformat.NotebookNode``."""
    import nbformat

    path, _ = _resolve_template(template)
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read notebook template: {exc}", file=str(path)) from exc


# --------------------------------------------------------------------------- kernel


def _kernel_argv() -> list[str]:
    argv = [sys.executable]
    if sys.version_info >= (3, 11):
        # Frozen stdlib modules make debugpy print a warning on every kernel start.
        argv.append("-Xfrozen_modules=off")
    return [*argv, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def _kernel_manager() -> Any:
    """A kernel manager whose kernel is ``sys.executable`` (same venv, no kernelspec)."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec = KernelSpec(
        argv=_kernel_argv(),
        display_name=f"Python {sys.version_info.major}.{sys.version_info.minor} (abkit)",
        language="python",
        metadata={"debugger": False},
    )

    class _ThisInterpreter(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            return spec

    return AsyncKernelManager(kernel_name="abkit-python", kernel_spec_manager=_ThisInterpreter())


def execute_notebook(
    nb: Any,
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    template_name: str = "template",
) -> Any:
    """Run every cell of ``nb`` in a fresh kernel of this interpreter; return it executed.

    A failing cell raises :class:`ReportError` naming the cell and the error, never a
    notebook-sized traceback.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    kernel_env = dict(os.environ)
    kernel_env.update(env or {})
    kernel_env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    workdir = os.fspath(cwd) if cwd is not None else os.getcwd()
    client = NotebookClient(
        nb,
        km=_kernel_manager(),
        timeout=timeout,
        startup_timeout=120,
        allow_errors=False,
        record_timing=False,
        resources={"metadata": {"path": workdir}},
    )
    # The kernel's own log (connection warnings, crashes) goes to a file rather than the
    # user's terminal; its tail is quoted if the kernel dies.
    failure: CellExecutionError | CellTimeoutError | None = None
    with tempfile.TemporaryFile(mode="w+b") as kernel_log:
        try:
            client.execute(env=kernel_env, stderr=kernel_log, stdout=kernel_log)
        except DeadKernelError as dead:
            kernel_log.seek(0)
            tail = kernel_log.read().decode("utf-8", "replace").strip().splitlines()[-5:]
            raise ReportError(
                f"report kernel died while running {template_name!r}: {dead}"
                + (f" (kernel log: {' | '.join(tail)})" if tail else "")
            ) from None
        except (CellExecutionError, CellTimeoutError) as caught:
            failure = caught
    if failure is None:
        return nb
    if isinstance(failure, CellExecutionError):
        index = _failed_cell_index(nb)
        where = f" in cell {index}" if index is not None else ""
        raise ReportError(
            f"report template {template_name!r} failed{where}: {failure.ename}: {failure.evalue}"
        ) from None
    raise ReportError(f"report template {template_name!r} timed out: {failure}") from None


def _failed_cell_index(nb: Any) -> int | None:
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return index
    return None


# --------------------------------------------------------------------------- export

# Elements that run code, embed other documents or pull in resources.
_ACTIVE_TAGS = frozenset({"script", "iframe", "object", "embed", "link", "base", "frame", "applet"})
# Attributes whose value a browser fetches on its own when the page loads.
_FETCH_ATTRS = frozenset(
    {"src", "srcset", "poster", "data", "background", "action", "formaction", "href"}
)
_CSS_LOAD = re.compile(r"@import|url\(\s*[\"']?\s*(?!data:|#|\))", re.IGNORECASE)


class _OfflineAudit(HTMLParser):
    """Walks the parsed HTML (not its text) so escaped user text never trips the audit."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line = self.getpos()[0]
        if tag in _ACTIVE_TAGS:
            self.problems.append(f"<{tag}> element on line {line}")
        if tag == "meta" and any(
            n == "http-equiv" and (v or "").strip().lower() == "refresh" for n, v in attrs
        ):
            # <meta http-equiv="refresh" content="0;url=https://..."> navigates on load.
            self.problems.append(f"<meta http-equiv=refresh> on line {line}")
        self._in_style = tag == "style"
        for name, value in attrs:
            value = (value or "").strip()
            if name.startswith("on"):
                self.problems.append(f"event handler {name}= on <{tag}> line {line}")
            elif name == "style" and _CSS_LOAD.search(value):
                self.problems.append(f"style attribute loads a resource on line {line}")
            elif name in _FETCH_ATTRS or name.endswith(":href"):  # SVG's xlink:href loads too
                if name == "href" and tag == "a":
                    # A link is followed by a reader, never fetched on load; but a
                    # javascript: link is code, whatever the CSP of the viewer does.
                    if re.sub(r"[\s\x00-\x1f]", "", value).lower().startswith("javascript:"):
                        self.problems.append(f"javascript: link on line {line}")
                    continue
                if not (value.startswith(("data:", "#")) or value == ""):
                    self.problems.append(f"<{tag} {name}={value[:60]!r}> on line {line}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style and _CSS_LOAD.search(data):
            self.problems.append(f"stylesheet loads a resource near line {self.getpos()[0]}")


def check_offline(html_text: str) -> list[str]:
    """Problems that would make the HTML fetch or run anything; an empty list is safe.

    Only embedded ``data:`` URIs and in-page ``#`` anchors may be loaded; ``<a href>``
    links are allowed because a browser never follows them on its own.
    """
    audit = _OfflineAudit()
    audit.feed(html_text)
    audit.close()
    return audit.problems


def stylesheet() -> str:
    """The reports' stylesheet (inlined in every report and the index page)."""
    return (_templates_dir() / "nbconvert" / "abkit" / "report.css").read_text(encoding="utf-8")


def export_html(
    nb: Any,
    *,
    hide_code: bool,
    title: str,
    show_stderr: bool | None = None,
) -> str:
    """Export an executed notebook to HTML with abkit's offline template."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="abkit",
        extra_template_basedirs=[str(_templates_dir() / "nbconvert")],
        exclude_input=hide_code,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    res = {
        "metadata": {"name": title},
        "abkit": {
            "hide_code": hide_code,
            "show_stderr": (not hide_code) if show_stderr is None else show_stderr,
            "css": stylesheet(),
            "title": title,
        },
    }
    body, _ = exporter.from_notebook_node(nb, resources=res)
    return body


# --------------------------------------------------------------------------- public API


def _safe_filename(key: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._") or "report"
    return name[:120]


def _writable_out(out_path: Path) -> Path:
    """``out_path`` once its folder exists and is writable; a one-line error otherwise."""
    if out_path.is_dir():
        raise ConfigError(
            "is a folder; give the report's file name (for example reports/KEY.html)",
            file=str(out_path),
            field="out",
        )
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(
            f"cannot create the report's folder {str(out_path.parent)!r}: a file is in the way",
            file=str(out_path),
            field="out",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot create the report's folder {str(out_path.parent)!r}: {exc.strerror or exc}",
            file=str(out_path),
            field="out",
        ) from None
    if not os.access(out_path.parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"the folder {str(out_path.parent)!r} is not writable", file=str(out_path), field="out"
        )
    return out_path


def _store_file(db: Any) -> Path | None:
    """The local database file the report reads (SQLite/DuckDB), to never overwrite it."""
    url_obj = getattr(getattr(db, "engine", None), "url", None)
    if url_obj is not None:
        return database_file(url_obj.render_as_string(hide_password=False))
    if db is not None:
        return database_file(os.fspath(db) if isinstance(db, os.PathLike) else str(db))
    from abkit.report.adapt import resolve_db_url

    try:
        return database_file(resolve_db_url(None))
    except ConfigError:  # no default store: nothing to protect
        return None


def _db_parameter(db: Any) -> tuple[str | None, dict[str, str]]:
    """The URL to inject, and environment for the kernel.

    A URL holding a password is handed to the kernel through ``ABKIT_DATABASE_URL``
    instead of the notebook, so it is never written into an executed notebook or an
    analyst's HTML (which show the parameters cell).
    """
    if db is None:
        return None, {}
    url_obj = getattr(getattr(db, "engine", None), "url", None)
    if url_obj is None:
        from sqlalchemy.engine import make_url

        try:
            url_obj = make_url(os.fspath(db) if isinstance(db, os.PathLike) else str(db))
        except Exception as exc:
            raise ConfigError(f"not a database URL: {exc}", field="db") from None
    url_text = url_obj.render_as_string(hide_password=False)
    if url_obj.drivername.startswith("sqlite") and url_obj.database not in (None, "", ":memory:"):
        # The kernel may run elsewhere; an absolute path names the same file.
        url_text = url_obj.set(database=str(Path(url_obj.database).resolve())).render_as_string(
            hide_password=False
        )
    if url_obj.password:
        return None, {"ABKIT_DATABASE_URL": url_text}
    return url_text, {}


def render_report(
    db: Any = None,
    experiment: str | None = None,
    *,
    template: str | os.PathLike[str] = "executive",
    out: str | os.PathLike[str] | None = None,
    metrics: str | os.PathLike[str] | None = None,
    alpha: float | None = None,
    method: str | None = None,
    segments: Sequence[str] | None = None,
    guardrails: Sequence[str] | None = None,
    business: Mapping[str, Any] | None = None,
    traffic_per_day: float | None = None,
    since: str | None = None,
    until: str | None = None,
    horizon_days: float | None = None,
    values: Mapping[str, float] | None = None,
    spec: str | os.PathLike[str] | None = None,
    title: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    hide_code: bool | None = None,
    save_notebook: bool = False,
    force: bool = False,
    timeout: float = 600,
) -> RenderedReport:
    """Execute a notebook template for one experiment and write a self-contained HTML file.

    Parameters
    ----------
    db:
        Database URL or ``Store`` (default: ``ABKIT_DATABASE_URL`` or ``sqlite:///abkit.db``).
    experiment:
        The experiment key (required by the ``executive`` and ``deep-dive`` templates).
    template:
        ``"executive"`` (code hidden), ``"deep-dive"``, ``"planner"``, or an ``.ipynb`` path.
    out:
        Output file; default ``reports/<experiment>.html``.
    metrics, alpha, method, segments, guardrails, business, traffic_per_day:
        Passed to the template's ``analyze`` call when given (``metrics`` is a TOML path;
        ``guardrails`` metric names; ``business`` a dict of ``BusinessAssumptions``).
    since, until:
        Limit the readout to a window (ISO date-times, UTC); ``until`` alone is an as-of
        readout (later data is left out). The report states the window.
    horizon_days:
        How long a test may run from its first exposure before the report says it cannot
        finish (default 56, eight weeks).
    values:
        Money per unit of a metric (metric name -> amount), to price a harmed guardrail.
    spec:
        The experiment spec file (``experiments.toml``): the analysis uses its metrics,
        method and business assumptions, as ``abkit analyze --spec`` does; the other
        arguments override them.
    title:
        The report's heading and HTML title.
    parameters:
        Any other template parameters (for example the planner's ``baseline``); every
        value must be plain data (None, bool, int, float, str, lists and dicts of those).
    save_notebook:
        Also write the executed notebook next to the HTML (``.ipynb``).
    force:
        Replace an existing output file that is not a report (never the database itself).

    Returns the :class:`RenderedReport` (path, size, timings).
    """
    import nbformat

    started = time.perf_counter()
    path, info = _resolve_template(template)
    nb = load_template(path)
    if info.needs_experiment and not experiment:
        raise ConfigError(f"the {info.name!r} report needs an experiment key", field="experiment")

    db_value, env = _db_parameter(db)
    if out is None:
        out = Path("reports") / f"{_safe_filename(experiment or info.name)}.html"
    # Likewise, every refusal about the output comes before a minute of work.
    store = _store_file(db)
    out_path = check_destination(
        _writable_out(Path(out)), kind="html", store=store, force=force, option="out"
    )
    notebook_path = None
    if save_notebook:
        notebook_path = check_destination(
            out_path.with_suffix(".ipynb"),
            kind="notebook",
            store=store,
            force=force,
            option="save_notebook",
        )
    params: dict[str, Any] = {}
    if experiment is not None:
        params["experiment"] = experiment
    if db is not None:
        params["db_url"] = db_value
    optional = {
        "metrics_path": None if metrics is None else os.fspath(metrics),
        "alpha": alpha,
        "method": method,
        "segments": None if segments is None else list(segments),
        "guardrails": None if guardrails is None else list(guardrails),
        "business": None if business is None else dict(business),
        "traffic_per_day": traffic_per_day,
        "since": since,
        "until": until,
        "horizon_days": horizon_days,
        "values": dict(values) if values else None,
        "spec_path": None if spec is None else str(Path(spec).resolve()),
        "title": title,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    params.update(parameters or {})
    inject_parameters(nb, params, template=f"template {info.name!r}")

    t0 = time.perf_counter()
    execute_notebook(nb, env=env, timeout=timeout, template_name=info.name)
    execute_seconds = time.perf_counter() - t0

    # ``--param title=...`` is the heading too, so the browser tab agrees with the page.
    given = title if title is not None else (parameters or {}).get("title")
    doc_title = (given if isinstance(given, str) and given else None) or (
        f"{info.title}: {experiment}" if experiment else info.title
    )
    hide = info.hide_code if hide_code is None else hide_code
    html_text = export_html(nb, hide_code=hide, title=doc_title)
    problems = check_offline(html_text)
    if problems:
        # Refuse to write a report that would phone home or run code when opened.
        raise ReportError("rendered HTML is not self-contained: " + "; ".join(problems[:3]))

    data = html_text.encode("utf-8")
    write_atomic(out_path, data, option="out")
    if notebook_path is not None:
        write_atomic(notebook_path, nbformat.writes(nb).encode("utf-8"), option="save_notebook")
    return RenderedReport(
        path=out_path,
        template=info.name,
        size_bytes=len(data),
        seconds=time.perf_counter() - started,
        execute_seconds=execute_seconds,
        notebook_path=notebook_path,
    )
