"""Where abkit looks for things it is not told about: the default store (stdlib only).

One rule for every command, notebook and report, so ``abkit analyze``, ``abkit report``,
``abkit quarantine`` and the notebooks all find the same store.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_URL = "ABKIT_DATABASE_URL"
# The SQLite files looked for when no store is named, in order: the user's own store, then
# the one ``abkit demo`` writes.
DEFAULT_FILES = ("abkit.db", "abkit-demo.db")


def default_store_url(
    db: str | None = None,
    *,
    cwd: str | os.PathLike[str] | None = None,
    create: bool = False,
    search_parent: bool = False,
    field: str = "db",
) -> str:
    """The store's URL by the one rule.

    ``db`` (the ``--db`` flag) wins; else ``$ABKIT_DATABASE_URL``; else the first existing
    of ``abkit.db`` and ``abkit-demo.db`` in ``cwd`` (default: the current folder) and, with
    ``search_parent`` (a notebook opened from ``notebooks/``), in the folder above. When none
    exists, a command that writes (``create=True``, e.g. ``abkit ingest``) gets a new
    ``abkit.db`` in ``cwd``; anything else gets a :class:`~abkit.errors.ConfigError` that
    says what to do.
    """
    from abkit.errors import ConfigError

    if db:
        return db
    env = os.environ.get(ENV_URL)
    if env:
        return env
    folder = Path(cwd) if cwd is not None else Path.cwd()
    folders = [folder, folder.resolve().parent] if search_parent else [folder]
    for where in folders:
        for name in DEFAULT_FILES:
            candidate = where / name
            if candidate.is_file():
                return f"sqlite:///{candidate.resolve()}"
    if create:
        return f"sqlite:///{(folder / DEFAULT_FILES[0]).resolve()}"
    looked = " and ".join(DEFAULT_FILES)
    where_text = f"{folder} (and the folder above)" if search_parent else str(folder)
    raise ConfigError(
        f"no store given and none found in {where_text} (looked for {looked}): pass --db URL "
        f"or set ${ENV_URL}, or create one: run `abkit demo` or `abkit ingest`",
        field=field,
    )
