"""The service path: assign() answers whatever the request carries, hooks are isolated and
thread-safe, regex rules cannot be turned against the service, odd weights stay sane."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from abkit.assignment import (
    Experiment,
    add_exposure_hook,
    assign,
    assign_many,
    remove_exposure_hook,
)
from abkit.assignment.targeting import MAX_REGEX_INPUT, compile_rule

TARGETED = Experiment(
    "t",
    variants=["control", "treatment"],
    targeting={
        "all": [
            {"attr": "country", "in": ["US", "CA"]},
            {"attr": "age", "gte": 18},
            {"attr": "v", "version_gte": "2.0"},
            {"not": {"attr": "ua", "regex": "bot"}},
        ]
    },
)
GOOD = {"country": "US", "age": 30, "v": "2.1", "ua": "Mozilla"}


class _Explodes:
    def __eq__(self, other):
        raise RuntimeError("broken __eq__")

    __hash__ = object.__hash__

    def __ge__(self, other):
        raise RuntimeError("broken __ge__")


@pytest.mark.parametrize(
    "attrs",
    [
        ["not", "a", "mapping"],
        "country=US",
        42,
        {"country": np.array(["US", "CA"]), "age": 30, "v": "2.1"},  # ambiguous truth value
        {"country": _Explodes(), "age": 30, "v": "2.1"},
        {"country": "US", "age": np.array([30, 40]), "v": "2.1"},
        {"country": "US", "age": 30, "v": 2.1},  # a float, not a version string
        {"country": "US", "age": float("nan"), "v": "2.1"},
    ],
)
def test_bad_attributes_mean_not_targeted_never_an_exception(attrs):
    a = assign(TARGETED, "user-1", attrs)
    assert (a.variant, a.in_experiment, a.reason) == ("control", False, "not_targeted")
    assert assign_many(TARGETED, ["user-1"], attrs if isinstance(attrs, dict) else None)[0] in (
        a,
        assign(TARGETED, "user-1", None),
    )
    # the same unit with good attributes is enrolled (so the rule, not the id, decided)
    assert assign(TARGETED, "user-1", GOOD).in_experiment
    # a wrong type makes its condition false, so under "not" it counts as a pass: bytes are
    # not text, so b"bot" does not match the bot regex
    assert assign(TARGETED, "user-1", {**GOOD, "ua": b"bot"}).in_experiment


def test_numpy_integer_ids_hash_like_python_ints():
    e = Experiment("np", variants=["a", "b", "c"], traffic=0.7)
    ids = np.arange(-50, 2000, dtype=np.int64)
    bulk = assign_many(e, ids)  # e.g. a DataFrame column
    assert bulk.reason_counts().get("invalid_unit", 0) == 0
    assert list(bulk) == [assign(e, int(i)) for i in ids] == [assign(e, str(int(i))) for i in ids]
    assert assign(e, np.int32(7)) == assign(e, "7")
    for bad in (np.bool_(True), True, 7.0, np.float64(7.0), object()):
        assert assign(e, bad).reason == "invalid_unit"


def test_now_must_be_an_aware_datetime_and_any_zone_means_the_same_instant():
    e = Experiment("w", variants=["a", "b"], start="2026-03-01T00:00:00Z")
    just_before = datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=timezone.utc)
    for tz in (timezone.utc, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))):
        assert assign(e, "u", now=just_before.astimezone(tz)).reason == "not_started"
        assert assign(
            e, "u", now=(just_before + timedelta(microseconds=1)).astimezone(tz)
        ).in_experiment
    with pytest.raises(ValueError, match="timezone-aware"):
        assign(e, "u", now=datetime(2026, 3, 2))
    with pytest.raises(TypeError, match="timezone-aware datetime"):
        assign(e, "u", now="2026-03-02T00:00:00Z")  # type: ignore[arg-type]


def test_hook_registration_is_thread_safe_while_assigning():
    e = Experiment("threads", variants=["a", "b"])
    seen: list = []
    lock = threading.Lock()

    def steady(record):
        with lock:
            seen.append(record.unit_id)

    add_exposure_hook(steady)
    errors: list = []
    stop = threading.Event()

    def churn():
        hooks = [lambda r, i=i: None for i in range(20)]
        while not stop.is_set():
            for h in hooks:
                add_exposure_hook(h)
            for h in hooks:
                remove_exposure_hook(h)

    def work(k):
        try:
            for i in range(2000):
                assert assign(e, f"t{k}-{i}").in_experiment
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    churner = threading.Thread(target=churn)
    workers = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    churner.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    churner.join()
    assert errors == []
    # the steady hook saw every enrolled assignment exactly once, whatever else churned
    assert sorted(seen) == sorted(f"t{k}-{i}" for k in range(4) for i in range(2000))


def test_hook_raising_or_bad_attributes_for_the_record_never_break_assign():
    calls = []

    def hook(record):
        calls.append(record)
        raise ValueError("sink down")

    add_exposure_hook(hook)
    e = Experiment("h", variants=["a", "b"])
    a = assign(e, "u1", {"x": np.array([1, 2])})  # attribute not a scalar: record str()s it
    b = assign(e, "u2", ["not", "a", "mapping"])  # record cannot be built: counted, skipped
    assert a.in_experiment and b.in_experiment
    assert [r.unit_id for r in calls] == ["u1"]


def test_regex_sees_values_up_to_the_documented_length_only():
    rule = compile_rule({"attr": "ua", "regex": "bot"})
    assert rule({"ua": "x" * (MAX_REGEX_INPUT - 3) + "bot"}) is True
    assert rule({"ua": "x" * (MAX_REGEX_INPUT - 2) + "bot"}) is False  # too long: false


def test_effective_weights_never_negative_when_weights_overshoot_one():
    # within the 1e-9 tolerance the floors can exceed 2**32; ranges must stay ordered
    e = Experiment(
        "w",
        variants=[
            {"name": "a", "weight": 0.6},
            {"name": "b", "weight": 0.4 + 5e-10},
            {"name": "c", "weight": 0.0},
        ],
    )
    assert list(e._plan.bounds) == sorted(e._plan.bounds)
    assert all(w >= 0 for w in e.effective_weights)
    assert sum(e.effective_weights) == 1.0
    assert e.effective_weights[2] == 0.0
    bulk = assign_many(e, [f"u{i}" for i in range(5000)])
    assert bulk.counts()["c"] == 0


def test_a_hook_may_unregister_itself_without_starving_the_next_hook():
    """Hooks run on a snapshot: a one-shot hook that removes itself mid-dispatch must not
    make the dispatcher skip the hook after it (what iterating the live list would do)."""
    e = Experiment("once", variants=["a", "b"])
    first, steady = [], []

    def once(record):
        first.append(record.unit_id)
        remove_exposure_hook(once)

    add_exposure_hook(once)
    add_exposure_hook(steady.append)
    assign(e, "u1")
    assign(e, "u2")
    assert first == ["u1"]
    assert [r.unit_id for r in steady] == ["u1", "u2"]


def test_invalid_ids_are_served_what_everyone_else_gets_after_the_end():
    """Logged-out traffic often has an empty id: once the experiment is over it must get
    the declared winner like everyone else, not the old control."""
    e = Experiment(
        "ended",
        variants=["control", "treatment"],
        winner="treatment",
        start="2026-01-01T00:00:00Z",
        end="2026-02-01T00:00:00Z",
    )
    during = datetime(2026, 1, 15, tzinfo=timezone.utc)
    after = datetime(2026, 2, 1, tzinfo=timezone.utc)
    for bad in ("", None, "x\udc80"):
        assert assign(e, bad, now=during)[2:] == ("control", {}, False, None, "invalid_unit")
        a = assign(e, bad, now=after)
        assert (a.variant, a.reason) == ("treatment", "invalid_unit")
        assert assign_many(e, [bad, "u"], now=after).variants == ("treatment", "treatment")
    paused = Experiment(
        "p",
        variants=["control", "treatment"],
        winner="treatment",
        status="paused",
        end="2026-02-01T00:00:00Z",
    )
    assert assign(paused, "", now=after).variant == "control"  # paused serves the control
    assert assign(paused, "u", now=after).variant == "control"


def test_str_subclass_ids_hash_as_their_text_in_assign_and_assign_many():
    import enum

    class Plan(str, enum.Enum):  # str() of a member is "Plan.U", its text "user-42"
        U = "user-42"

    class Loud(str):
        def __str__(self) -> str:
            raise RuntimeError("no")

    for experiment in (
        Experiment("plain", variants=["a", "b"], traffic=0.5),
        Experiment.from_dict(
            {"key": "held", "variants": ["a", "b"], "holdout": {"name": "h", "fraction": 0.1}}
        ),
    ):
        for unit in (Plan.U, Loud("user-42")):
            got = assign(experiment, unit, expose=False)
            want = assign(experiment, "user-42", expose=False)
            assert (got.variant, got.bucket, got.reason) == (want.variant, want.bucket, want.reason)
            assert assign_many(experiment, [unit]).variants == (want.variant,)


def test_numeric_targeting_compares_numpy_integers_by_value_and_never_bools():
    rule = Experiment.from_dict(
        {"key": "adults", "variants": ["a", "b"], "targeting": {"attr": "age", "gte": 18}}
    )
    for age, reason in (
        (np.int64(30), None),
        (np.int32(12), "not_targeted"),
        (True, "not_targeted"),
    ):
        assert assign(rule, "u1", {"age": age}, expose=False).reason == reason


def test_malformed_registry_shapes_and_patterns_are_config_errors():
    from abkit.assignment.patterns import PatternError, compile_search
    from abkit.assignment.registry import parse_registry
    from abkit.assignment.targeting import parse_version
    from abkit.errors import ConfigError

    for text in ('{"experiments": {}}', '{"experiments": ""}', '{"experiments": 0}'):
        with pytest.raises(ConfigError, match="must be a list"):
            parse_registry(text, fmt="json")
    with pytest.raises(ConfigError, match="must be a list"):
        parse_registry("[experiments]\n", fmt="toml")
    assert parse_registry('{"experiments": []}', fmt="json").registry.experiments == {}
    with pytest.raises(PatternError):
        compile_search("(" * 500 + "a" + ")" * 500)
    assert parse_version("1.0.0-") is None and parse_version("1.0.0-+b") is None
    assert parse_version("1.0.0") is not None and parse_version("1.0.0-rc.1") is not None
