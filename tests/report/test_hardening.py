"""Review findings: escaping of every user field, CLI errors before a kernel starts, the
notebooks' default database, and wording that must agree across sections."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from abkit.errors import ConfigError
from abkit.report import analyst
from abkit.report import sections as S
from abkit.report.adapt import resolve_db_url
from abkit.report.model import (
    DailySeries,
    Decision,
    Facts,
    Impact,
    MetricRow,
    Quality,
    QualityCheck,
    ReportModel,
    VariantFact,
)
from abkit.report.render import check_offline

# A tag that must never survive as markup, and a quote that must not break an attribute.
T = "<i id=pwn>\"'&"
RAW = "<i id=pwn>"


def _row(metric: str, variant: str, **kw) -> MetricRow:
    base = dict(
        metric=metric,
        variant=variant,
        role="primary",
        metric_type="proportion",
        control_mean=0.1,
        treatment_mean=0.12,
        abs_lift=0.02,
        abs_low=0.01,
        abs_high=0.03,
        rel_lift=0.2,
        rel_low=0.1,
        rel_high=0.3,
        p_value=0.001,
        significant=True,
        note=f"note {T}",
        label=f"label {T}",
        test=f"test {T}",
    )
    base.update(kw)
    return MetricRow(**base)


def _hostile_model() -> ReportModel:
    """Every string field a user or the store can influence holds markup."""
    variant = f"var {T}"
    return ReportModel(
        facts=Facts(
            key=f"key {T}",
            description=f"desc {T}",
            hypothesis=f"hyp {T}",
            owner=f"owner {T}",
            start=f"2026-01-01 {T}",
            end=f"2026-02-01 {T}",
            first_exposure=f"2026-01-02 {T}",
            last_exposure=f"2026-01-30 {T}",
            status=f"status {T}",
            tags=(f"tag {T}",),
            variants=(
                VariantFact(f"ctl {T}", 0.5, {f"k {T}": f"v {T}", "n": [T]}, True),
                VariantFact(variant, 0.5, {"model": T}),
            ),
        ),
        decision=Decision(verdict="ship", reason=f"reason {T}", reasons=(f"r1 {T}", f"r2 {T}")),
        metrics=(
            _row(f"m1 {T}", variant),
            _row(f"m2 {T}", f"other {T}", role="guardrail", guardrail_status="fail"),
            _row(f"m3 {T}", variant, status=f"odd {T}", significant=False),
        ),
        quality=Quality(
            counts={f"ctl {T}": 100, variant: 100},
            expected_shares={f"ctl {T}": 0.5, variant: 0.5},
            srm_p_value=0.5,
            srm_ok=False,
            checks=(QualityCheck(f"check {T}", f"st {T}", f"detail {T}"),),
            sample_collected=200,
            sample_needed=1000,
            sample_target=f"target {T}",
            days_remaining=2.0,
        ),
        impact=(Impact(f"imp {T}", f"per {T}", 10.0, 1.0, 20.0, f"unit {T}", False, f"as {T}"),),
        daily=(
            DailySeries(
                f"m1 {T}", variant, ("2026-01-01", "2026-01-02"), (0.1, 0.2), (0.0, 0.1), (0.2, 0.3)
            ),
        ),
        correction=f"holm {T}",
        generated_at=f"now {T}",
        abkit_version=f"0 {T}",
    )


SECTIONS = [
    ("title", lambda m: S.title_block(m, f"title {T}")),
    ("title-default", lambda m: S.title_block(m)),
    ("banner", S.decision_banner),
    ("headline", S.headline),
    ("impact", S.impact),
    ("scorecard", S.scorecard),
    ("forest", S.forest),
    ("cumulative", S.cumulative),
    ("quality", S.data_quality),
    ("facts", S.experiment_facts),
    ("methodology", S.methodology),
    ("footer", S.footer),
    ("data", S.report_data),
    ("model-repr", lambda m: type("R", (), {"_repr_html_": lambda self: m._repr_html_()})()),
    ("srm-plot", analyst.srm_plot),
]


@pytest.mark.parametrize(("name", "section"), SECTIONS, ids=[n for n, _ in SECTIONS])
def test_every_user_field_is_escaped_in_every_section(name, section):
    html_text = section(_hostile_model())._repr_html_()
    assert RAW not in html_text, name
    assert "id=pwn" not in html_text.replace("id=pwn&gt;", ""), name  # no bare attribute
    assert check_offline(html_text) == [], name


def test_segment_table_escapes_segment_names_and_values():
    from types import SimpleNamespace

    lift = SimpleNamespace(
        rel_ci=(0.1, 0.3),
        p_value_adjusted=0.01,
        p_value=0.01,
        metric=f"m {T}",
        variant=f"v {T}",
        n_control=10,
        n_treatment=12,
        rel_lift=0.2,
        significant=True,
    )
    result = SimpleNamespace(
        segments=[SimpleNamespace(segment=f"country {T}", value=f"value {T}", result=lift)]
    )
    page = analyst.segment_table(result).html
    assert RAW not in page and "value &lt;i id=pwn&gt;" in page


def test_significance_words_agree_with_the_forest_plot():
    """A significant rise of a lower-is-better metric is "worse" in words, never "▲"."""
    model = _hostile_model()
    harm = _row("errors", "b", role="guardrail", higher_is_better=False, label="errors")
    win = _row("conversion", "b", label="conversion")
    page = S.scorecard(model, rows=[harm, win]).html
    assert "significant: worse" in page and "significant: better" in page
    assert "chip-significant-down" in page and "chip-significant-up" in page
    assert "▲" not in page and "▼" not in page
    assert "▲" in S.forest(model).caption and "good direction" in S.forest(model).caption


def test_methodology_names_the_correction_and_its_guarantee():
    model = _hostile_model()
    holm = S.methodology(type(model)(**{**model.__dict__, "correction": "holm"})).html
    assert "(Holm)" in holm and "chance of any false alarm" in holm
    assert "O&#x27;Brien-Fleming" in holm  # the early-look rule of decision.py, rule 3
    bh = S.methodology(type(model)(**{**model.__dict__, "correction": "bh"})).html
    assert "Benjamini-Hochberg" in bh and "share of false alarms" in bh
    assert "chance of any false alarm" not in bh
    seq = S.methodology(type(model)(**{**model.__dict__, "method": "sequential"})).html
    assert "O&#x27;Brien-Fleming" not in seq and "always-valid" in seq


# --------------------------------------------------------------------------- database


def test_default_database_of_a_notebook(tmp_path, monkeypatch):
    monkeypatch.delenv("ABKIT_DATABASE_URL", raising=False)
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    monkeypatch.chdir(nb_dir)
    with pytest.raises(ConfigError, match=r"run `abkit demo`") as info:
        resolve_db_url(None)
    assert info.value.location.field == "db_url"
    assert list(nb_dir.iterdir()) == []  # nothing created while looking
    # The README's demo, run at the repository root, is found from notebooks/.
    (tmp_path / "abkit-demo.db").write_bytes(b"")
    assert resolve_db_url(None) == f"sqlite:///{(tmp_path / 'abkit-demo.db').resolve()}"
    # ./abkit.db wins over the demo's file; the environment wins over both.
    (nb_dir / "abkit.db").write_bytes(b"")
    assert resolve_db_url(None) == f"sqlite:///{(nb_dir / 'abkit.db').resolve()}"
    monkeypatch.setenv("ABKIT_DATABASE_URL", "postgresql://u@h/db")
    assert resolve_db_url(None) == "postgresql://u@h/db"


def test_a_missing_sqlite_file_is_an_error_and_is_not_created(tmp_path):
    missing = tmp_path / "nope.db"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_db_url(f"sqlite:///{missing}")
    assert not missing.exists()
    assert resolve_db_url("sqlite://") == "sqlite://"  # in-memory is not a file


# --------------------------------------------------------------------------- CLI


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("ABKIT_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "abkit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    from abkit.analysis.simulate import load_simulation, simulate_experiment

    root = tmp_path_factory.mktemp("tiny")
    db = f"sqlite:///{root / 'tiny.db'}"
    load_simulation(simulate_experiment(500, key="tiny", seed=1, impressions=0.0), db)
    return db, root


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (
            lambda db, root: ["--db", f"sqlite:///{root / 'missing.db'}", "--experiment", "tiny"],
            "does not exist",
        ),
        (
            lambda db, root: [
                "--db",
                db,
                "--experiment",
                "tiny",
                "--out",
                str(root / "tiny.db/x.html"),
            ],
            "a file is in the way",
        ),
        (lambda db, root: ["--db", db, "--experiment", "tiny", "--out", str(root)], "is a folder"),
        (
            lambda db, root: [
                "--db",
                db,
                "--experiment",
                "tiny",
                "--template",
                str(root / "t.ipynb"),
            ],
            "does not exist",
        ),
        (lambda db, root: ["--db", db, "--experiment", "nope"], "has no exposures"),
        (lambda db, root: ["--db", db, "--experiment", "tiny", "--template", "bogus"], "unknown"),
    ],
    ids=[
        "missing-db",
        "out-under-a-file",
        "out-is-a-folder",
        "template-file",
        "experiment",
        "name",
    ],
)
def test_cli_user_errors_are_one_line_exit_2_before_a_kernel(tiny_store, make_args, message):
    db, root = tiny_store

    def listing() -> list[str]:  # SQLite's -wal/-shm come and go with connections
        return sorted(p.name for p in root.iterdir() if not p.name.startswith("tiny.db-"))

    before = listing()
    done = _cli("report", *make_args(db, root), cwd=root)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert listing() == before  # no database, no folder, no .tmp left behind


# --------------------------------------------------------------------------- colours


def _luminance(hex_colour: str) -> float:
    """WCAG 2.x relative luminance of ``#rgb`` / ``#rrggbb``."""
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    channels = [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_text_colours_meet_wcag_aa_contrast():
    """Every chip, banner and muted text reaches 4.5:1 against its background (WCAG AA)."""
    import re

    from abkit.report.render import _stylesheet

    css = _stylesheet()
    variables = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{3,6})", css))

    def colour(value: str) -> str:
        value = value.strip()
        found = re.fullmatch(r"var\(--([\w-]+)\)", value)
        return variables[found.group(1)] if found else value

    rules = re.findall(r"([^{}]+)\{([^}]*)\}", css)
    checked = 0
    for selectors, body in rules:
        props = dict((k.strip(), v.strip()) for k, v in re.findall(r"([\w-]+)\s*:\s*([^;]+)", body))
        if "chip-" in selectors and "color" in props and "background" in props:
            ratio = _contrast(colour(props["color"]), colour(props["background"]))
            assert ratio >= 4.5, (selectors.strip(), ratio)
            checked += 1
        if selectors.strip().startswith(".abkit-verdict-") and "background" in props:
            ratio = _contrast(variables["ink"], colour(props["background"]))
            assert ratio >= 4.5, (selectors.strip(), ratio)
            checked += 1
    assert checked >= 9  # five chip rules and four verdicts
    for bg in ("#ffffff", variables["panel"], variables["green-bg"], variables["red-bg"]):
        assert _contrast(variables["muted"], bg) >= 4.5, bg  # captions, notes, reasons


# --------------------------------------------------------------------------- agreement


def _quality(collected: int, needed: int, days: float | None) -> Quality:
    return Quality(
        counts={"a": collected // 2, "b": collected - collected // 2},
        expected_shares={"a": 0.5, "b": 0.5},
        srm_p_value=0.9,
        srm_ok=True,
        sample_collected=collected,
        sample_needed=needed,
        sample_target="10.0% relative change with 80% power",
        days_remaining=days,
    )


def test_sample_collected_against_needed_in_words():
    """Short of the plan says how far and how long; past it says "at least", no days."""
    base = _hostile_model()
    short = S.data_quality(type(base)(**{**base.__dict__, "quality": _quality(190, 1000, 3.5)}))
    assert "190 units collected of the 1,000 planned to detect a 10.0%" in short.html
    assert "19%" in short.html and "≈ 3.5 days more" in short.html
    assert "at least" not in short.html
    done = S.data_quality(type(base)(**{**base.__dict__, "quality": _quality(4000, 1000, None)}))
    assert "4,000 units collected, at least the 1,000 planned" in done.html
    assert "100%" in done.html and "more at current traffic" not in done.html


@pytest.mark.parametrize("status", ["pass", "fail", "inconclusive"])
def test_guardrail_chip_word_and_colour_agree(status):
    row = _row("errors", "b", role="guardrail", guardrail_status=status, label="errors")
    page = S.scorecard(_hostile_model(), rows=[row]).html
    assert f'<span class="chip chip-{status}">{status}</span>' in page


def test_impact_interval_reads_low_to_high():
    imp = Impact("revenue", "month", 1500.0, -200.0, 3200.0, "USD", True, "assumption")
    base = _hostile_model()
    page = S.impact(type(base)(**{**base.__dict__, "impact": (imp,)})).html
    assert "+$1,500" in page and "interval [−$200, +$3,200]" in page
    assert "Projected impact per month if shipped (from revenue)" in page


def test_a_failed_write_is_one_config_error(tmp_path, monkeypatch):
    """The folder vanishes between the early check and the write: still a user error."""
    from abkit.report import render

    out = tmp_path / "gone" / "r.html"
    checked = render._writable_out(out)
    (tmp_path / "gone").rmdir()
    (tmp_path / "gone").write_text("now a file")
    data = b"<html></html>"
    tmp = checked.with_name(checked.name + ".tmp")
    with pytest.raises(OSError):
        tmp.write_bytes(data)  # what render_report meets; it must turn into ConfigError
    monkeypatch.setattr(render, "_writable_out", lambda p: p)
    monkeypatch.setattr(render, "execute_notebook", lambda nb, **kw: nb)
    monkeypatch.setattr(render, "_check_experiment", lambda db, key: None)
    with pytest.raises(ConfigError, match="cannot write the report") as info:
        render.render_report("sqlite://", "k", out=out)
    assert info.value.location.field == "out"
