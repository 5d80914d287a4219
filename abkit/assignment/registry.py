"""Registry files: many experiments in one TOML or JSON file, validated with located errors.

TOML layout (JSON is the same data: ``{"holdout": {...}, "experiments": [...]}``, or a
bare list of experiments)::

    [holdout]                    # optional global holdout, applied to every experiment
    name = "holdout-2026"
    fraction = 0.05

    [[experiments]]
    key = "ranker-v2"
    traffic = 0.5
    namespace = { name = "homepage", start = 0.0, end = 0.5 }
    targeting = { not = { attr = "user_agent", regex = "(?i)bot|crawler|spider" } }

    [[experiments.variants]]
    name = "control"
    payload = { model = "ranker-v1" }

    [[experiments.variants]]
    name = "treatment"
    payload = { model = "ranker-v2" }

Errors name the file, the experiment, the field and (where it can be found) the line.
Beyond each experiment's own checks the registry rejects duplicate keys, two experiments
with the same salt (their assignments would be identical, not independent) and
overlapping slices of one namespace among experiments that are not stopped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from abkit.assignment.config import Experiment, Holdout, _holdout_from
from abkit.errors import ConfigError

_TOP_FIELDS = ("holdout", "experiments")


class UnknownExperimentError(ConfigError, KeyError):
    """A key not in the registry: a ConfigError for users, a KeyError for Mapping.get."""

    __str__ = Exception.__str__  # KeyError would quote the message


@dataclass(frozen=True, eq=False)
class Registry(Mapping[str, Experiment]):
    """Experiments by key (a read-only mapping), with the global holdout and source file.

    Iterating yields keys, like any mapping; use ``registry.values()`` for experiments.
    """

    experiments: Mapping[str, Experiment] = field(default_factory=dict)
    holdout: Holdout | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "experiments", MappingProxyType(dict(self.experiments)))

    def __getitem__(self, key: str) -> Experiment:
        try:
            return self.experiments[key]
        except KeyError:
            known = ", ".join(sorted(self.experiments)) or "none"
            raise UnknownExperimentError(
                f"no experiment {key!r} in the registry (known: {known})",
                file=self.source,
                field="key",
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.experiments)

    def __len__(self) -> int:
        return len(self.experiments)

    def to_dict(self) -> dict[str, Any]:
        """JSON registry data; ``registry_from_dict(r.to_dict())`` rebuilds it."""
        exps = []
        for e in self.experiments.values():
            d = e.to_dict()
            if self.holdout is not None:
                d.pop("holdout")  # carried once, at the top
            exps.append(d)
        return {
            "holdout": None if self.holdout is None else self.holdout.to_dict(),
            "experiments": exps,
        }


def load_experiments(path: str | Path) -> Registry:
    """Read a ``.toml`` or ``.json`` registry file (by extension; otherwise by content)."""
    p = Path(path)
    name = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("registry file not found", file=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read registry file: {exc}", file=name) from None
    suffix = p.suffix.lower()
    is_json = suffix == ".json" or (suffix != ".toml" and text.lstrip()[:1] in ("{", "["))
    data = _parse_json(text, name) if is_json else _parse_toml(text, name)
    return registry_from_dict(data, source=name, text=text, fmt="json" if is_json else "toml")


def _parse_json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", file=name
        ) from None


def _parse_toml(text: str, name: str) -> Any:
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise ConfigError(
                "reading TOML registries needs Python 3.11+ or the 'tomli' package "
                "(pip install tomli); or write the registry as JSON",
                file=name,
            ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=name) from None


def registry_from_dict(
    data: Any, *, source: str | None = None, text: str | None = None, fmt: str = "json"
) -> Registry:
    """Validate registry data (as parsed from a file) into a :class:`Registry`."""
    locate = _Locator(text, fmt)

    def fail(message: str, key: str | None = None, field_name: str | None = None) -> ConfigError:
        line = locate(key, field_name)
        where = f" (line {line})" if line else ""
        prefix = f"experiment {key!r}{where}: " if key else (f"line {line}: " if line else "")
        return ConfigError(prefix + message, file=source, field=field_name)

    if isinstance(data, list):
        data = {"experiments": data}
    if not isinstance(data, Mapping):
        raise fail("a registry is a table/object with 'experiments' (and optional 'holdout')")
    unknown = [k for k in data if k not in _TOP_FIELDS]
    if unknown:
        raise fail(f"unknown top-level field {unknown[0]!r}; allowed: holdout, experiments")
    holdout = None
    if data.get("holdout") is not None:
        try:
            holdout = _holdout_from(data["holdout"], None)
        except ConfigError as exc:
            raise fail(exc.message, None, "holdout") from None
    entries = data.get("experiments") or []
    if not isinstance(entries, list):
        raise fail("'experiments' must be a list ([[experiments]] in TOML)")
    experiments: dict[str, Experiment] = {}
    salts: dict[str, str] = {}
    for pos, entry in enumerate(entries):
        key = entry.get("key") if isinstance(entry, Mapping) else None
        key = key if isinstance(key, str) else None
        if not isinstance(entry, Mapping):
            raise fail(f"experiments[{pos}] must be a table/object")
        if key is None:
            raise fail(f"experiments[{pos}] needs a string 'key'", None, "key")
        entry = dict(entry)
        if holdout is not None:
            own = entry.get("holdout")
            if own is not None and _holdout_from(own, key) != holdout:
                raise fail(
                    "sets a holdout different from the registry's global holdout", key, "holdout"
                )
            entry["holdout"] = holdout.to_dict()
        try:
            exp = Experiment.from_dict(entry)
        except ConfigError as exc:
            message = exc.message
            # config errors start with "experiment 'key': "; re-prefix with the line
            message = message.split(": ", 1)[1] if message.startswith("experiment ") else message
            raise fail(message, key, exc.location.field) from None
        except TypeError as exc:  # e.g. a field given the wrong shape
            raise fail(str(exc), key) from None
        if key in experiments:
            raise fail("duplicate experiment key", key, "key")
        if exp.salt in salts:
            raise fail(
                f"has the same salt {exp.salt!r} as experiment {salts[exp.salt]!r}; "
                "their assignments would be identical, not independent",
                key,
                "salt",
            )
        salts[exp.salt] = key
        experiments[key] = exp
    _check_namespaces(experiments, fail)
    return Registry(experiments, holdout, source)


def _check_namespaces(experiments: Mapping[str, Experiment], fail) -> None:
    seen: list[Experiment] = []
    for exp in experiments.values():
        ns = exp.namespace
        if ns is None or exp.status == "stopped":
            continue  # a stopped experiment serves its winner and frees its slice
        for other in seen:
            if other.namespace is not None and ns.overlaps(other.namespace):
                raise fail(
                    f"namespace {ns.name!r} slice [{ns.start}, {ns.end}) overlaps experiment "
                    f"{other.key!r} slice [{other.namespace.start}, {other.namespace.end}); "
                    "experiments sharing a namespace need disjoint slices",
                    exp.key,
                    "namespace",
                )
        seen.append(exp)


class _Locator:
    """Best-effort line numbers: the line of an experiment's key, then of a field after it."""

    def __init__(self, text: str | None, fmt: str) -> None:
        self.lines = text.splitlines() if text else []
        self.fmt = fmt

    def _pattern(self, name: str, value: str | None = None) -> re.Pattern[str]:
        n = re.escape(name)
        if self.fmt == "json":
            v = "" if value is None else r"\s*" + re.escape(json.dumps(value))
            return re.compile(rf'"{n}"\s*:{v}')
        v = "" if value is None else r"\s*" + re.escape(json.dumps(value))
        return re.compile(rf"^\s*(?:{n}|\"{n}\")\s*={v}|[{{,]\s*{n}\s*={v}")

    def __call__(self, key: str | None, field_name: str | None) -> int | None:
        if not self.lines:
            return None
        start = 0
        if key is not None:
            pat = self._pattern("key", key)
            hits = [i for i, line in enumerate(self.lines) if pat.search(line)]
            if not hits:
                return None
            start = hits[-1] if field_name == "key" else hits[0]
            if field_name in (None, "key"):
                return start + 1
        if field_name is None:
            return None
        pat = self._pattern(field_name)
        end = len(self.lines)
        if key is not None:  # stop at the next experiment
            nxt = (
                re.compile(r"^\s*\[\[\s*experiments\s*\]\]")
                if self.fmt == "toml"
                else self._pattern("key")
            )
            for i in range(start + 1, len(self.lines)):
                if nxt.search(self.lines[i]):
                    end = i
                    break
        for i in range(start, end):
            if pat.search(self.lines[i]):
                return i + 1
        return start + 1 if key is not None else None
