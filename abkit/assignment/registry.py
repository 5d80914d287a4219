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

The same file is the experiment spec (``docs/spec.md``): each experiment may also carry the
lifecycle's sections (:data:`SPEC_SECTIONS`: ``metrics``, ``business``, ``readout``,
``ramp``, ``safety``, ``source``), which assignment ignores and :func:`read_registry`
hands over raw, with a line locator, to the spec loader.

Errors name the file, the experiment, the field and (where it can be found) the line.
Beyond each experiment's own checks the registry rejects duplicate keys, two experiments
with the same salt (their assignments would be identical, not independent) and
overlapping slices of one namespace among experiments that are not stopped. Hostile files
(nesting thousands deep, integers of thousands of digits) are refused with a located
:class:`~abkit.errors.ConfigError`, never an unexpected exception.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from abkit.assignment.config import Experiment, Holdout, _holdout_from
from abkit.assignment.locate import FieldLocator, FieldPath, format_field_path, parse_field_path
from abkit.errors import ConfigError

_TOP_FIELDS = ("holdout", "experiments")

#: Per-experiment sections of the experiment spec that assignment accepts and ignores
#: (validated by :mod:`abkit.lifecycle` from :attr:`RawExperiment.data`).
SPEC_SECTIONS: tuple[str, ...] = ("metrics", "business", "readout", "ramp", "safety", "source")

#: Deepest nesting accepted inside one experiment entry (targeting rules, payloads). Real
#: entries stay below 10; the bound keeps every later recursive step (validation, JSON
#: encoding of payloads, targeting evaluation) far from Python's recursion limit.
MAX_ENTRY_DEPTH = 64

RegistryFormat = Literal["toml", "json"]


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


@dataclass(frozen=True)
class RawExperiment:
    """One experiment entry as written in the file, with the line of any of its fields.

    ``data`` is the parsed mapping (every key, spec sections included); ``path`` is where
    the entry sits in the file (``("experiments", 2)``). Field paths are strings such as
    ``"safety.rollback_variant"`` or ``"ramp.stages[1].traffic"``, or tuples of parts.
    """

    key: str
    data: Mapping[str, Any]
    path: FieldPath
    source: str | None
    locator: FieldLocator = field(repr=False, compare=False)

    def line(self, field_path: str | FieldPath = ()) -> int | None:
        """The file line of ``field_path`` in this entry (of its nearest written parent
        when the field itself is absent); the entry's first line for ``()``."""
        return self.locator.line((*self.path, *parse_field_path(field_path)))

    def error(self, message: str, field_path: str | FieldPath = ()) -> ConfigError:
        """A located error: ``FILE, field F: experiment 'K' (line N): F: message``."""
        parts = parse_field_path(field_path)
        text = format_field_path(parts)
        line = self.line(parts) if parts else self.locator.line((*self.path, "key"))
        where = f" (line {line})" if line else ""
        body = f"{text}: {message}" if text else message
        return ConfigError(
            f"experiment {self.key!r}{where}: {body}", file=self.source, field=text or None
        )


@dataclass(frozen=True)
class RegistryDocument:
    """A parsed registry/spec file: the validated :class:`Registry` that assignment serves,
    each experiment's raw entry (for the spec loader), and the text's SHA-256."""

    registry: Registry
    entries: Mapping[str, RawExperiment]
    data: Mapping[str, Any]
    source: str | None
    text: str
    fmt: RegistryFormat
    content_hash: str


def read_registry(path: str | Path) -> RegistryDocument:
    """Read and validate a ``.toml`` or ``.json`` registry/spec file (see module doc)."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError("registry file not found", file=name) from None
    except OSError as exc:
        raise ConfigError(f"cannot read registry file: {exc.strerror or exc}", file=name) from None
    return parse_registry(raw, source=name, fmt=_format_of(Path(path)))


def load_experiments(path: str | Path) -> Registry:
    """Read a ``.toml`` or ``.json`` registry file (by extension; otherwise by content)."""
    return read_registry(path).registry


def parse_registry(
    content: str | bytes, *, source: str | None = None, fmt: RegistryFormat | None = None
) -> RegistryDocument:
    """Validate registry text (``fmt`` None: JSON when it starts with ``{`` or ``[``)."""
    raw = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"line {line}: not valid UTF-8 ({exc.reason})", file=source) from None
    if fmt is None:
        # a TOML file may start with "[holdout]" or "[[experiments]]"; a JSON list of
        # experiments starts with "[{" (or is "[]")
        fmt = "json" if re.match(r"\s*(\{|\[\s*[{\]])", text) else "toml"
    data = _parse_json(text, source) if fmt == "json" else _parse_toml(text, source)
    locator = FieldLocator(text, fmt)
    registry = _validate(data, source, locator)
    base: FieldPath = ("experiments",) if isinstance(data, Mapping) else ()
    items = (data.get("experiments") or []) if isinstance(data, Mapping) else data
    entries = {
        e["key"]: RawExperiment(e["key"], MappingProxyType(dict(e)), (*base, pos), source, locator)
        for pos, e in enumerate(items)
    }
    return RegistryDocument(
        registry,
        MappingProxyType(entries),
        MappingProxyType(dict(data) if isinstance(data, Mapping) else {"experiments": data}),
        source,
        text,
        fmt,
        hashlib.sha256(raw).hexdigest(),
    )


def _format_of(path: Path) -> RegistryFormat | None:
    suffix = path.suffix.lower()
    return "json" if suffix == ".json" else "toml" if suffix == ".toml" else None


def _first_line(text: str, pattern: str) -> int | None:
    m = re.search(pattern, text)
    return None if m is None else text.count("\n", 0, m.start()) + 1


def _hostile(exc: BaseException, text: str, name: str | None) -> ConfigError:
    """A located error for input that defeats the parser itself (too deep, too long)."""
    if isinstance(exc, RecursionError):
        line = _nesting_line(text)
        where = f"line {line}: " if line else ""
        return ConfigError(where + "nesting too deep for a registry file", file=name)
    line = _first_line(text, r"\d{1000,}")
    if line is not None:
        return ConfigError(f"line {line}: a number with thousands of digits", file=name)
    return ConfigError(f"cannot parse the registry file: {exc}", file=name)


def _nesting_line(text: str, limit: int = 200) -> int | None:
    """Line where brackets first nest ``limit`` deep (ignoring brackets inside strings)."""
    depth = 0
    for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|[\[{]|[\]}]', text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if depth >= limit:
                return text.count("\n", 0, m.start()) + 1
        elif tok in "]}":
            depth -= 1
    return None


def _parse_json(text: str, name: str | None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", file=name
        ) from None
    except (RecursionError, ValueError, MemoryError) as exc:
        raise _hostile(exc, text, name) from None


def _parse_toml(text: str, name: str | None) -> Any:
    try:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
    except ModuleNotFoundError:  # Python 3.10 without tomli (a declared dependency there)
        raise ConfigError(
            "reading TOML registries needs Python 3.11+ or the 'tomli' package "
            "(pip install tomli); or write the registry as JSON",
            file=name,
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", file=name) from None
    except (RecursionError, ValueError, MemoryError) as exc:
        raise _hostile(exc, text, name) from None


def registry_from_dict(
    data: Any, *, source: str | None = None, text: str | None = None, fmt: str = "json"
) -> Registry:
    """Validate registry data (as parsed from a file) into a :class:`Registry`."""
    return _validate(data, source, FieldLocator(text, fmt))


def _too_deep(value: object, limit: int) -> FieldPath | None:
    """Path of the first node nested deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[object, FieldPath]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > limit:
            return path
        if isinstance(node, Mapping):
            stack.extend((v, (*path, str(k))) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((v, (*path, i)) for i, v in enumerate(node))
    return None


def _validate(data: object, source: str | None, locator: FieldLocator) -> Registry:
    base: FieldPath = ("experiments",) if isinstance(data, Mapping) else ()

    def fail(
        message: str, pos: int | None = None, key: str | None = None, field_name: str | None = None
    ) -> ConfigError:
        line = None
        if pos is None:
            line = locator.line((field_name,)) if field_name else None
        elif field_name in (None, "key"):
            line = locator.line((*base, pos, "key")) or locator.line((*base, pos))
        else:
            parts = parse_field_path(field_name)
            exact = (*base, pos, *parts)
            line = locator.lines.get(exact) or (
                locator.find((*base, pos), str(parts[-1])) or locator.line((*base, pos))
            )
        where = f" (line {line})" if line else ""
        prefix = f"experiment {key!r}{where}: " if key else (f"line {line}: " if line else "")
        return ConfigError(prefix + message, file=source, field=field_name)

    if isinstance(data, list):
        data = {"experiments": data}
    if not isinstance(data, Mapping):
        raise fail("a registry is a table/object with 'experiments' (and optional 'holdout')")
    unknown = [k for k in data if k not in _TOP_FIELDS]
    if unknown:
        raise fail(
            f"unknown top-level field {unknown[0]!r}; allowed: holdout, experiments",
            field_name=str(unknown[0]),
        )
    holdout = None
    if data.get("holdout") is not None:
        try:
            holdout = _holdout_from(data["holdout"], None)
        except ConfigError as exc:
            raise fail(exc.message, field_name="holdout") from None
    entries = data.get("experiments")
    if entries is None:
        entries = []
    if not isinstance(entries, list):  # {}, "", 0, false, an [experiments] table
        raise fail("'experiments' must be a list ([[experiments]] in TOML)")
    experiments: dict[str, Experiment] = {}
    positions: dict[str, int] = {}
    salts: dict[str, str] = {}
    for pos, entry in enumerate(entries):
        key = entry.get("key") if isinstance(entry, Mapping) else None
        key = key if isinstance(key, str) else None
        if not isinstance(entry, Mapping):
            raise fail(f"experiments[{pos}] must be a table/object", pos)
        if key is None:
            raise fail(f"experiments[{pos}] needs a string 'key'", pos, None, "key")
        deep = _too_deep(entry, MAX_ENTRY_DEPTH)
        if deep is not None:
            raise fail(
                f"{format_field_path(deep[:3])}: nested more than {MAX_ENTRY_DEPTH} levels deep",
                pos,
                key,
                format_field_path(deep[:1]),
            )
        entry = {k: v for k, v in entry.items() if k not in SPEC_SECTIONS}
        try:
            own = entry.get("holdout") if holdout is not None else None
            if own is not None and _holdout_from(own, key) != holdout:
                differs = "sets a holdout different from the registry's global holdout"
                raise ConfigError(differs, field="holdout")
            if holdout is not None:
                entry["holdout"] = holdout.to_dict()
            exp = Experiment.from_dict(entry)
        except ConfigError as exc:
            message = exc.message
            # config errors start with "experiment 'key': "; re-prefix with the line
            message = message.split(": ", 1)[1] if message.startswith("experiment ") else message
            raise fail(message, pos, key, exc.location.field) from None
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            # a field of the wrong shape or size that a check did not anticipate
            raise fail(f"invalid value: {exc}", pos, key) from None
        if key in experiments:
            raise fail("duplicate experiment key", pos, key, "key")
        salt = exp.salt or key
        if salt in salts:
            raise fail(
                f"has the same salt {salt!r} as experiment {salts[salt]!r}; "
                "their assignments would be identical, not independent",
                pos,
                key,
                "salt",
            )
        salts[salt] = key
        experiments[key] = exp
        positions[key] = pos
    _check_namespaces(experiments, lambda m, k, f: fail(m, positions[k], k, f))
    return Registry(experiments, holdout, source)


def _check_namespaces(
    experiments: Mapping[str, Experiment], fail: Callable[[str, str, str], ConfigError]
) -> None:
    """Reject overlapping slices of one namespace: sort each namespace's slices once and
    compare neighbours (n log n; a pairwise check took minutes on thousands of slices)."""
    order = {key: i for i, key in enumerate(experiments)}
    by_name: dict[str, list[Experiment]] = {}
    for exp in experiments.values():
        if exp.namespace is not None and exp.status != "stopped":
            # a stopped experiment serves its winner and frees its slice
            by_name.setdefault(exp.namespace.name, []).append(exp)
    clashes: list[tuple[int, Experiment, Experiment]] = []
    for group in by_name.values():
        group.sort(key=lambda e: e.namespace.range if e.namespace else (0, 0))
        widest = group[0]
        for exp in group[1:]:
            assert exp.namespace is not None and widest.namespace is not None
            if exp.namespace.overlaps(widest.namespace):
                later, earlier = sorted((exp, widest), key=lambda e: order[e.key], reverse=True)
                clashes.append((order[later.key], later, earlier))
            if exp.namespace.range[1] > widest.namespace.range[1]:
                widest = exp
    if clashes:
        _, exp, other = min(clashes, key=lambda c: c[0])
        ns, on = exp.namespace, other.namespace
        assert ns is not None and on is not None
        raise fail(
            f"namespace {ns.name!r} slice [{ns.start}, {ns.end}) overlaps experiment "
            f"{other.key!r} slice [{on.start}, {on.end}); "
            "experiments sharing a namespace need disjoint slices",
            exp.key,
            "namespace",
        )
