"""Config-change impact check: what a registry edit does to units before it ships.

``diff_experiments(old, new)`` assigns the same units under both configurations (with
:func:`assign_many`, so the answers are exactly what services will compute) and counts,
per experiment, the units that **switch** variant while enrolled, **leave** the
experiment, **join** it, or stay. For a running test, switches and leaves are the
dangerous part: they move units between arms mid-test and bias the readout.

How the hashing reacts to edits (docs/assignment-spec.md, "Changing a running
experiment"): raising ``traffic`` only adds units; lowering it only removes units;
changing weights moves exactly the units whose variant hash lies between an old and a new
range boundary (for two variants ``|Δw|`` of the enrolled units, the minimum possible);
changing the salt or the key reshuffles everyone (about ``1 - Σ w_k²`` switch).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from abkit.assignment.assign import assign_many
from abkit.assignment.config import Experiment

NOT_ENROLLED = "-"  # transition label of a unit that is not enrolled


@dataclass(frozen=True)
class ExperimentDiff:
    """Unit movements of one experiment between two configurations."""

    key: str
    change: str  # "changed", "unchanged", "added", "removed"
    running: bool  # running in the new config (or the old one, when removed)
    n: int
    stayed: int = 0
    switched: int = 0
    left: int = 0
    joined: int = 0
    outside: int = 0
    served_changed: int = 0  # units whose served variant changes, enrolled or not
    enrolled_before: int = 0
    enrolled_after: int = 0
    transitions: Mapping[str, int] = field(default_factory=dict, hash=False)
    changed_fields: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def share(self, what: str) -> float:
        return getattr(self, what) / self.n if self.n else 0.0

    @property
    def reshuffles(self) -> bool:
        """True when enrolled units would move arm or drop out of a running test."""
        return self.running and self.change == "changed" and (self.switched or self.left) > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "change": self.change,
            "running": self.running,
            "n": self.n,
            "stayed": self.stayed,
            "switched": self.switched,
            "left": self.left,
            "joined": self.joined,
            "outside": self.outside,
            "served_changed": self.served_changed,
            "enrolled_before": self.enrolled_before,
            "enrolled_after": self.enrolled_after,
            "switched_share": self.share("switched"),
            "left_share": self.share("left"),
            "joined_share": self.share("joined"),
            "reshuffles": self.reshuffles,
            "transitions": dict(self.transitions),
            "changed_fields": list(self.changed_fields),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class ConfigDiff:
    """Diff of two registries (or two experiments) over the same units."""

    experiments: tuple[ExperimentDiff, ...]
    n_units: int
    sampled: bool  # True when the units are a synthetic sample, not user-supplied ids

    @property
    def reshuffled(self) -> tuple[ExperimentDiff, ...]:
        return tuple(d for d in self.experiments if d.reshuffles)

    @property
    def ok(self) -> bool:
        """No running experiment would move or drop enrolled units."""
        return not self.reshuffled

    def __getitem__(self, key: str) -> ExperimentDiff:
        for d in self.experiments:
            if d.key == key:
                return d
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_units": self.n_units,
            "sampled": self.sampled,
            "ok": self.ok,
            "experiments": [d.to_dict() for d in self.experiments],
        }

    def to_text(self) -> str:
        """A Markdown table plus warnings (what ``abkit assign diff`` prints)."""
        src = "synthetic ids" if self.sampled else "supplied ids"
        lines = [
            f"Impact over {self.n_units:,} {src}:",
            "",
            "| experiment | change | enrolled old → new | switch variant | leave | join "
            "| served variant changes |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for d in self.experiments:
            flag = " ⚠" if d.reshuffles else ""
            lines.append(
                f"| {d.key}{flag} | {d.change} | {_pct(d.share('enrolled_before'))} → "
                f"{_pct(d.share('enrolled_after'))} | {_pct(d.share('switched'))} | "
                f"{_pct(d.share('left'))} | {_pct(d.share('joined'))} | "
                f"{_pct(d.share('served_changed'))} |"
            )
        notes = [f"- {d.key}: {w}" for d in self.experiments for w in d.warnings] + [
            f"- {d.key}: changed fields: {', '.join(d.changed_fields)}"
            for d in self.experiments
            if d.changed_fields
        ]
        if notes:
            lines += ["", *notes]
        lines += [
            "",
            "OK: no running experiment moves enrolled units."
            if self.ok
            else "RESHUFFLE: running experiments would move enrolled units: "
            + ", ".join(d.key for d in self.reshuffled),
        ]
        return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _as_mapping(obj: Any) -> Mapping[str, Experiment]:
    if isinstance(obj, Experiment):
        return {obj.key: obj}
    if isinstance(obj, (str, Path)):
        from abkit.assignment.registry import load_experiments

        return load_experiments(obj)
    if isinstance(obj, Mapping):
        return obj
    if isinstance(obj, Iterable):
        return {e.key: e for e in obj}
    raise TypeError(f"expected an Experiment, a registry or a path, got {type(obj).__name__}")


def diff_experiments(
    old: Any,
    new: Any,
    unit_ids: Sequence[Any] | None = None,
    *,
    sample: int = 100_000,
    attributes: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None,
    now: datetime | None = None,
) -> ConfigDiff:
    """Compare two configurations over ``unit_ids`` (default: ``sample`` synthetic ids).

    ``old``/``new`` are Experiments, registries (mappings by key, e.g. from
    :func:`load_experiments`) or registry file paths. Two single experiments with
    different keys are compared as one (a rename reshuffles). Without ``attributes``,
    targeting is not evaluated (every unit counts as targeted) and a warning says so.
    """
    pairs: list[tuple[str, Experiment | None, Experiment | None]]
    if isinstance(old, Experiment) and isinstance(new, Experiment):
        pairs = [(new.key, old, new)]
    else:
        a, b = _as_mapping(old), _as_mapping(new)
        keys = list(a) + [k for k in b if k not in a]
        pairs = [(k, a.get(k), b.get(k)) for k in keys]
    sampled = unit_ids is None
    ids = [f"abkit-diff-{i}" for i in range(sample)] if unit_ids is None else list(unit_ids)
    out = [_diff_one(k, o, n, ids, attributes, now) for k, o, n in pairs]
    return ConfigDiff(tuple(out), len(ids), sampled)


def _diff_one(key, old, new, ids, attributes, now) -> ExperimentDiff:
    n = len(ids)
    if old is None or new is None:
        exp = new if old is None else old
        bulk = assign_many(exp, ids, attributes, now=now, check_targeting=attributes is not None)
        k = sum(bulk.in_experiment)
        return ExperimentDiff(
            key=key,
            change="added" if old is None else "removed",
            running=exp.status == "running",
            n=n,
            joined=k if old is None else 0,
            left=k if new is None else 0,
            outside=n - k,
            enrolled_before=k if new is None else 0,
            enrolled_after=k if old is None else 0,
        )
    targeted = attributes is not None
    a = assign_many(old, ids, attributes, now=now, check_targeting=targeted)
    b = assign_many(new, ids, attributes, now=now, check_targeting=targeted)
    stayed = switched = left = joined = outside = served = 0
    transitions: dict[str, int] = {}
    for va, ea, vb, eb in zip(
        a.variants, a.in_experiment, b.variants, b.in_experiment, strict=False
    ):
        served += va != vb
        if ea and eb:
            if va == vb:
                stayed += 1
            else:
                switched += 1
        elif ea:
            left += 1
        elif eb:
            joined += 1
        else:
            outside += 1
        label = f"{va if ea else NOT_ENROLLED} -> {vb if eb else NOT_ENROLLED}"
        transitions[label] = transitions.get(label, 0) + 1
    da, db = old.to_dict(), new.to_dict()
    changed = tuple(f for f in da if da[f] != db[f])
    return ExperimentDiff(
        key=key,
        change="changed" if changed or old.key != new.key else "unchanged",
        running=new.status == "running" or old.status == "running",
        n=n,
        stayed=stayed,
        switched=switched,
        left=left,
        joined=joined,
        outside=outside,
        served_changed=served,
        enrolled_before=stayed + switched + left,
        enrolled_after=stayed + switched + joined,
        transitions=dict(sorted(transitions.items())),
        changed_fields=changed,
        warnings=tuple(_warnings(old, new, da, db, targeted)),
    )


def _warnings(old: Experiment, new: Experiment, da, db, targeted: bool) -> list[str]:
    w = []
    if old.salt != new.salt:
        w.append(f"salt changed ({old.salt!r} -> {new.salt!r}): every unit is re-hashed")
    if old.variant_names != new.variant_names:
        w.append(f"variants changed {list(old.variant_names)} -> {list(new.variant_names)}")
    elif old.weights != new.weights:
        w.append("weights changed: units between old and new range boundaries switch variant")
    if new.traffic < old.traffic:
        w.append(f"traffic lowered {old.traffic:g} -> {new.traffic:g}: enrolled units leave")
    if da["namespace"] != db["namespace"]:
        w.append("namespace changed: units move in or out of the experiment")
    if da["holdout"] != db["holdout"]:
        w.append("holdout changed: units move in or out of every experiment")
    if old.status != new.status:
        w.append(f"status {old.status} -> {new.status}")
    if (old.targeting is not None or new.targeting is not None) and not targeted:
        w.append("targeting not evaluated (no attributes supplied): all units counted as targeted")
    return w
