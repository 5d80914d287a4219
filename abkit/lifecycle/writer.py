"""Writing a new version of a spec file atomically, so a service never reads half a file.

A change (status, traffic, winner of one experiment) is applied to the file's text with
``tomlkit`` for TOML (comments and layout kept) or ``json`` for JSON, the result is
validated as a whole with :func:`abkit.lifecycle.spec.specs_from_text`, and only then
written: a temporary file in the same folder, flushed and ``fsync``-ed, renamed over the
spec (``os.replace`` is atomic on POSIX), and the folder ``fsync``-ed. The previous text is
kept beside it as ``<file>.prev`` (and every version in the store's spec history).
The write is refused when the experiment's version on disk is not the one the caller
decided on (someone changed the file meanwhile): the caller re-reads and decides again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from abkit.errors import ConfigError
from abkit.lifecycle.spec import SpecFile, load_specs, specs_from_text


class StaleSpecError(ConfigError):
    """The spec changed on disk after the decision was taken."""


def apply_changes(specfile: SpecFile, key: str, changes: Mapping[str, Any]) -> str:
    """The file's text with one experiment's top-level fields changed (``None`` removes)."""
    if specfile.fmt == "json":
        data = json.loads(specfile.text)
        entries = data if isinstance(data, list) else data["experiments"]
        for entry in entries:
            if entry.get("key") == key:
                _set(entry, changes)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    import tomlkit

    doc = tomlkit.parse(specfile.text)
    for entry in doc["experiments"]:
        if entry.get("key") == key:
            _set(entry, changes)
    return tomlkit.dumps(doc)


def _set(entry: Any, changes: Mapping[str, Any]) -> None:
    for name, value in changes.items():
        if value is None:
            if name in entry:
                del entry[name]
        else:
            entry[name] = value


def write_spec_version(
    path: str | Path, key: str, changes: Mapping[str, Any], *, expect_version: str
) -> SpecFile:
    """Apply ``changes`` to experiment ``key`` and write the file atomically (module doc)."""
    p = Path(path)
    current = load_specs(p)
    if current[key].version != expect_version:
        raise StaleSpecError(
            f"experiment {key!r} changed on disk since it was read "
            f"({expect_version[:12]} -> {current[key].version[:12]}); read it again",
            file=str(p),
            field="key",
        )
    text = apply_changes(current, key, changes)
    updated = specs_from_text(text, fmt=current.fmt, source=str(p), base_dir=p.parent)
    for name, value in changes.items():
        raw = updated[key].raw.get(name)
        if raw != value:
            raise ConfigError(
                f"experiment {key!r}: writing {name} = {value!r} produced {raw!r}",
                file=str(p),
                field=name,
            )
    _atomic_write(p.with_name(p.name + ".prev"), current.text, mode_from=p)
    _atomic_write(p, text, mode_from=p)
    return updated


def _atomic_write(path: Path, text: str, *, mode_from: Path) -> None:
    folder = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode_from.exists():
            os.chmod(tmp, mode_from.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
