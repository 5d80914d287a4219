"""LiveRegistry: real file rewrites (atomic, in place, truncated, empty) reach a service
within the poll interval, and a bad file never replaces the version served."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from abkit.assignment import LiveRegistry, load_experiments
from abkit.assignment.registry import Registry, parse_registry
from abkit.errors import ConfigError

RUNNING = """\
[[experiments]]
key = "ranker"
status = "running"
winner = "control"
[[experiments.variants]]
name = "control"
payload = { model = "m1" }
[[experiments.variants]]
name = "treatment"
payload = { model = "m2" }

[[experiments]]
key = "banner"
variants = ["off", "on"]
"""
ROLLED_BACK = RUNNING.replace('status = "running"', 'status = "stopped"')
UNITS = [f"user-{i}" for i in range(400)]


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "experiments.toml"
    path.write_text(RUNNING, encoding="utf-8")
    return path


def served(live: LiveRegistry) -> set[str]:
    return {live.assign("ranker", u).variant for u in UNITS}


def test_a_rollback_reaches_the_service_within_the_poll_interval(spec):
    with LiveRegistry(spec, poll_interval=0.2) as live:
        assert served(live) == {"control", "treatment"}
        atomic_write(spec, ROLLED_BACK)
        t = time.monotonic()
        while served(live) != {"control"}:
            assert time.monotonic() - t < 5.0, "the rollback never reached the service"
            time.sleep(0.005)
        # one poll interval, plus scheduling slack on a loaded machine
        assert time.monotonic() - t < 0.2 + 1.0
        assert live.reloads == 1 and live.errors == 0
        assert live["ranker"].status == "stopped"
        assert live.version.registry is live.registry


@pytest.mark.parametrize(
    "damage",
    ["empty", "cut mid-line", "cut at a line boundary", "invalid", "missing"],
)
def test_a_damaged_file_never_replaces_the_version_served(spec, damage):
    errors: list[ConfigError] = []
    live = LiveRegistry(spec, poll_interval=60, start=False, on_error=errors.append)
    before = live.version
    text = ROLLED_BACK
    if damage == "empty":
        spec.write_text("", encoding="utf-8")
    elif damage == "cut mid-line":
        spec.write_text(text[: text.index("payload") + 12], encoding="utf-8")  # in place
    elif damage == "cut at a line boundary":
        # parses: the first experiment is whole, but the running "banner" disappeared
        spec.write_text(text[: text.index('[[experiments]]\nkey = "banner"')], encoding="utf-8")
    elif damage == "invalid":
        spec.write_text(text.replace('name = "treatment"', 'name = "control"'), encoding="utf-8")
    else:
        spec.unlink()
    assert live.refresh() is False
    assert live.version is before and served(live) == {"control", "treatment"}
    assert live.errors == 1 and len(errors) == 1 and str(spec) in str(errors[0])
    assert live.refresh() is False and live.errors == (2 if damage == "missing" else 1)
    atomic_write(spec, ROLLED_BACK)  # the writer repairs the file
    assert live.refresh() is True and served(live) == {"control"}


def test_damage_is_logged_when_no_hook_is_given(spec, caplog):
    live = LiveRegistry(spec, poll_interval=60, start=False)
    spec.write_text("[[experiments]\n", encoding="utf-8")
    with caplog.at_level("WARNING", logger="abkit.assignment.live"):
        assert live.refresh() is False
    assert "invalid TOML" in caplog.text and str(spec) in caplog.text


def test_same_content_rewritten_is_not_a_new_version(spec):
    changes = []
    live = LiveRegistry(spec, poll_interval=60, start=False, on_change=changes.append)
    atomic_write(spec, RUNNING)
    assert live.refresh() is False and live.reloads == 0 and changes == []
    atomic_write(spec, RUNNING.replace('variants = ["off", "on"]', 'variants = ["off", "on", "x"]'))
    assert live.refresh() is True and len(changes) == 1 and live["banner"].variant_names[-1] == "x"


def test_requests_see_one_whole_version_while_versions_swap(spec):
    """Hammer assign from two threads while the file flips between two versions."""
    live = LiveRegistry(spec, poll_interval=60, start=False)
    flips = [RUNNING, RUNNING.replace('"m2"', '"m3"')]
    stop = threading.Event()
    seen: set[tuple[str, str]] = set()
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            while not stop.is_set():
                for u in UNITS[:50]:
                    a = live.assign("ranker", u)
                    seen.add((a.variant, a.payload["model"]))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=serve) for _ in range(2)]
    for th in threads:
        th.start()
    for i in range(30):
        atomic_write(spec, flips[i % 2] + f"# {i}\n")
        live.refresh()
    stop.set()
    for th in threads:
        th.join()
    assert not failures
    assert seen <= {("control", "m1"), ("treatment", "m2"), ("treatment", "m3")}
    assert live.reloads == 30


def test_the_first_load_must_succeed_and_unknown_keys_say_what_is_known(spec, tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        LiveRegistry(tmp_path / "nope.toml", start=False)
    empty = tmp_path / "empty.toml"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="empty"):
        LiveRegistry(empty, start=False)
    live = LiveRegistry(spec, start=False)
    with pytest.raises(ConfigError, match=r"known: banner, ranker"):
        live.assign("nope", "u1")
    assert dict(live) == dict(load_experiments(spec))


def test_a_custom_loader_decides_what_is_served(spec):
    calls: list[tuple[int, str]] = []

    def loader(content: bytes, source: str) -> Registry:
        calls.append((len(content), source))
        doc = parse_registry(content, source=source, fmt="toml")
        return Registry({k: v for k, v in doc.registry.items() if k == "ranker"}, None, source)

    live = LiveRegistry(spec, start=False, loader=loader)
    assert list(live) == ["ranker"] and calls == [(len(RUNNING.encode()), str(spec))]


def test_a_handle_follows_new_versions_at_no_cost_to_assign(spec):
    from abkit.assignment import assign, assign_many

    live = LiveRegistry(spec, poll_interval=60, start=False)
    ranker = live.experiment("ranker")
    assert live.experiment("ranker") is ranker and ranker.key == "ranker"
    assert {assign(ranker, u).variant for u in UNITS} == {"control", "treatment"}
    atomic_write(spec, ROLLED_BACK)
    assert live.refresh()
    assert {assign(ranker, u).variant for u in UNITS} == {"control"}
    assert ranker.status == "stopped" and ranker.current is live["ranker"]
    assert assign_many(ranker, UNITS[:10]).variants == ("control",) * 10


def test_a_handle_reads_every_public_attribute_of_the_served_version(spec):
    # forwarding properties (not __getattr__, which would slow every read of the handle's
    # plan in assign): each public attribute of Experiment, current after a swap
    from dataclasses import fields

    from abkit.assignment.config import Experiment
    from abkit.assignment.live import LiveExperiment

    assert "__getattr__" not in vars(LiveExperiment)
    live = LiveRegistry(spec, poll_interval=60, start=False)
    ranker = live.experiment("ranker")
    public = {f.name for f in fields(Experiment) if not f.name.startswith("_")} | {
        n for n in dir(Experiment) if not n.startswith("_") and n != "from_dict"
    }
    for name in sorted(public):
        got, want = getattr(ranker, name), getattr(live["ranker"], name)
        assert (got() == want()) if callable(want) and name == "to_dict" else got == want, name
    atomic_write(spec, ROLLED_BACK)
    assert live.refresh()
    assert ranker.status == "stopped" and ranker.to_dict() == live["ranker"].to_dict()
    with pytest.raises(AttributeError):
        _ = ranker.no_such_attribute


def test_a_rewrite_that_keeps_size_and_time_stamp_is_still_seen(spec, monkeypatch):
    # coarse time stamps, or a file server whose clock is ahead: a same-size rewrite can
    # leave size, time stamp and inode as they were; the content is what is compared
    import abkit.assignment.live as live_module

    monkeypatch.setattr(live_module, "_QUIET_NS", 300_000_000)
    stamp = time.time_ns() + 300 * 1_000_000_000  # five minutes ahead of this host
    os.utime(spec, ns=(stamp, stamp))
    live = LiveRegistry(spec, poll_interval=60, start=False)
    paused = RUNNING.replace('status = "running"', 'status = "paused" ')  # same length
    assert len(paused) == len(RUNNING)
    spec.write_text(paused, encoding="utf-8")
    os.utime(spec, ns=(stamp, stamp))
    assert live.refresh() is False  # seen, rewritten in place: not yet quiet
    time.sleep(0.35)  # quiet by this host's clock, whatever the file's time stamp says
    assert live.refresh() is True and live["ranker"].status == "paused"


def test_a_prefix_of_a_file_being_written_in_place_is_never_served(spec, monkeypatch):
    # an editor or `cat >` writing in place has flushed the first variants but not the
    # third: the prefix parses and validates, yet serving it would move units later
    import abkit.assignment.live as live_module

    monkeypatch.setattr(live_module, "_QUIET_NS", 300_000_000)
    live = LiveRegistry(spec, poll_interval=60, start=False)
    before = live.version
    banner = RUNNING[RUNNING.index('[[experiments]]\nkey = "banner"') :]
    ranker = RUNNING[: RUNNING.index('[[experiments]]\nkey = "banner"')]
    third = '[[experiments.variants]]\nname = "treatment-2"\npayload = { model = "m3" }\n'
    text = banner + "\n" + ranker + third
    with open(spec, "w", encoding="utf-8") as writer:
        writer.write(text[: -len(third)])
        writer.flush()
        assert live.refresh() is False and live.version is before
        time.sleep(0.1)  # the writer is still at work
        writer.write(third)
    assert live.refresh() is False and live.version is before  # not quiet yet
    time.sleep(0.35)
    assert live.refresh() is True and live["ranker"].variant_names[-1] == "treatment-2"
    assert live.reloads == 1 and live.errors == 0


def test_the_thread_serves_an_in_place_write_once_it_is_quiet(spec, monkeypatch):
    import abkit.assignment.live as live_module

    monkeypatch.setattr(live_module, "_QUIET_NS", 500_000_000)
    with LiveRegistry(spec, poll_interval=0.1) as live:
        spec.write_text(ROLLED_BACK, encoding="utf-8")
        t = time.monotonic()
        while live["ranker"].status != "stopped":
            assert time.monotonic() - t < 5.0, "the in-place write was never served"
            time.sleep(0.01)
        assert time.monotonic() - t >= 0.4  # not before it was quiet


def test_a_forked_worker_follows_the_file_with_a_thread_of_its_own(spec):
    # a pre-fork server: the registry is made before the fork, threads are not inherited
    live = LiveRegistry(spec, poll_interval=0.05)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            atomic_write(spec, ROLLED_BACK)
            deadline = time.monotonic() + 10
            while live["ranker"].status != "stopped" and time.monotonic() < deadline:
                time.sleep(0.01)
            code = 0 if live["ranker"].status == "stopped" else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    live.close()
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_candidate_interrupted_by_other_content_waits_its_quiet_time_again(spec, monkeypatch):
    # a buffered writer rewrites in place: the same prefix, then an empty file, then the
    # same prefix again; the prefix's first sighting must not count any more
    import abkit.assignment.live as live_module

    monkeypatch.setattr(live_module, "_QUIET_NS", 300_000_000)
    live = LiveRegistry(spec, poll_interval=60, start=False)
    prefix = RUNNING.replace('"m2"', '"m3"')
    spec.write_text(prefix, encoding="utf-8")
    assert live.refresh() is False  # pending
    time.sleep(0.35)
    spec.write_text("", encoding="utf-8")
    assert live.refresh() is False and live.errors == 1
    spec.write_text(prefix, encoding="utf-8")
    assert live.refresh() is False  # seen again just now: not yet quiet
    time.sleep(0.35)
    assert live.refresh() is True
