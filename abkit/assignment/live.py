"""``LiveRegistry``: a service follows its registry/spec file without a restart.

>>> live = LiveRegistry("experiments.toml", poll_interval=5.0)   # doctest: +SKIP
>>> live.assign("ranker-v2", "user-3", {"user_agent": ua}).payload  # doctest: +SKIP
>>> ranker = live.experiment("ranker-v2")    # a handle that follows the file   # doctest: +SKIP
>>> assign(ranker, "user-3").variant         # plain assign, no extra cost       # doctest: +SKIP

A daemon thread reads the file every ``poll_interval`` seconds (a spec file is a few
kilobytes: reading it and comparing its SHA-256 costs less than trusting a ``stat``, whose
time stamps may be coarse or set by another machine's clock) and, when its content differs
from the version served, validates it completely and swaps the new
:class:`~abkit.assignment.registry.Registry` in with one reference assignment, so a request
sees either the old or the new version, never a mix. A file replaced by a rename (a new
inode) is complete and is swapped in at once, so a rollback written that way reaches the
service within one poll interval. A file rewritten in place is swapped in only once its
content has stayed the same for two seconds by this host's clock (the thread looks again
then): a writer that has flushed the first part of a file may leave a prefix that parses
and validates (the last variants or fields cut off), and serving it would move units
between variants.

The version served is kept, and the problem reported (``on_error`` hook, else a warning
on the ``abkit.assignment.live`` logger; counted in :attr:`LiveRegistry.errors`), when
the new file is

* missing, unreadable, empty, not valid TOML/JSON, or invalid as a registry;
* changing while it is read, or rewritten in place and not yet the same for two seconds
  (a writer in progress: read again once it is quiet);
* missing an experiment that the served version runs or pauses. A truncated TOML file
  can still parse (cut at a line boundary, it loses its last experiments); an
  experiment ends by ``status = "stopped"`` (its winner keeps being served), never by
  deletion, so a disappearing live experiment is taken for a damaged file.

Writers should still replace the file atomically (write a temporary file in the same
folder, then rename), as the lifecycle controller does: then a reader never sees a
partial file at all. Only the standard library is used (``threading``, ``hashlib``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abkit.assignment.assign import Assignment
from abkit.assignment.assign import assign as _assign
from abkit.assignment.config import Experiment
from abkit.assignment.registry import Registry, _format_of, parse_registry
from abkit.errors import ConfigError

LOGGER_NAME = __name__

#: ``loader(content, source) -> Registry``: validates file bytes (raises ConfigError).
Loader = Callable[[bytes, str], Registry]
ErrorHook = Callable[[ConfigError], Any]
ChangeHook = Callable[["Version"], Any]

# How long a file must be left alone: longer than the coarsest time stamps (1-2 s) and than
# a writer's pause between flushes.
_QUIET_NS = 2_000_000_000


class LiveExperiment:
    """A stable handle on one experiment of a :class:`LiveRegistry`: ``assign`` and
    ``assign_many`` accept it like an :class:`Experiment` and always use the version
    served now (they read its evaluation plan once per call, so a request sees one whole
    version); other attributes are the current :class:`Experiment`'s. It costs nothing on
    the request path: the registry rebinds the plan when it swaps a version in."""

    __slots__ = ("_experiment", "_plan", "key")

    def __init__(self, experiment: Experiment) -> None:
        self.key = experiment.key
        self._rebind(experiment)

    def _rebind(self, experiment: Experiment) -> None:
        self._experiment = experiment
        self._plan = experiment._plan

    @property
    def current(self) -> Experiment:
        return self._experiment

    if TYPE_CHECKING:  # at run time each public attribute is a forwarding property (below)

        def __getattr__(self, name: str) -> Any: ...

    def __repr__(self) -> str:
        return f"LiveExperiment({self._experiment!r})"


def _forwarding(name: str) -> property:
    return property(
        lambda self: getattr(self._experiment, name),
        doc=f"The served version's ``{name}``.",
    )


# Forwarding properties, not a __getattr__: a class with __getattr__ makes every attribute
# read on its instances take the generic path (the interpreter cannot specialise it), and
# ``assign`` reads ``handle._plan`` on each request (~170 ns more per call, measured).
for _name in sorted(
    {f.name for f in fields(Experiment)} | {n for n in dir(Experiment) if not n.startswith("_")}
):
    if not _name.startswith("_") and _name not in {*vars(LiveExperiment), "from_dict"}:
        setattr(LiveExperiment, _name, _forwarding(_name))
del _name


@dataclass(frozen=True)
class Version:
    """The registry a :class:`LiveRegistry` serves, with where and when it came from."""

    registry: Registry
    content_hash: str
    loaded_at: float  # time.time() of the swap


class LiveRegistry(Mapping[str, Experiment]):
    """Experiments by key from a file that is re-read when it changes (see module doc).

    ``loader`` turns the file's bytes into the registry to serve (default: the
    assignment registry reader; :mod:`abkit.lifecycle` passes its spec reader so that
    specs keep their own defaults). The first load must succeed: a service does not start
    without a valid registry. ``start=False`` polls only when :meth:`refresh` is called.
    """

    def __init__(
        self,
        path: str | Path,
        poll_interval: float = 5.0,
        *,
        loader: Loader | None = None,
        on_error: ErrorHook | None = None,
        on_change: ChangeHook | None = None,
        start: bool = True,
    ) -> None:
        if not poll_interval > 0:
            raise ValueError("poll_interval must be a positive number of seconds")
        self.path = Path(path)
        self.poll_interval = float(poll_interval)
        self._loader = loader or self._default_loader
        self._on_error = on_error
        self._on_change = on_change
        self._lock = threading.RLock()  # hooks may call back (e.g. experiment())
        self._stop = threading.Event()
        self._signature: tuple[int, int, int] | None = None
        # a new version seen but not served yet: (digest, time.monotonic_ns() first seen,
        # its validated registry)
        self._pending: tuple[str, int, Registry] | None = None
        self._wake_at_ns: int | None = None  # monotonic: look again then (not yet quiet)
        self._rejected: str | None = None
        self._handles: dict[str, LiveExperiment] = {}
        #: Versions refused (bad file) since start, and the last refusal.
        self.errors = 0
        self.last_error: ConfigError | None = None
        #: New versions swapped in since start (the first load not counted).
        self.reloads = 0
        for _attempt in range(20):  # a writer at work: wait for the file to settle
            content, signature = self._read()
            if content is not None:
                break
            time.sleep(0.05)
        else:
            raise ConfigError("the registry file keeps changing while it is read", file=str(path))
        if not content.strip():
            raise ConfigError("the registry file is empty", file=str(path))
        self._install(self._loader(content, str(self.path)), content, signature)
        self._thread: threading.Thread | None = None
        self._following = start
        self._start_thread()
        _REGISTRIES[id(self)] = self

    def _start_thread(self) -> None:
        if self._following and not self._stop.is_set():
            self._thread = threading.Thread(
                target=self._run, name=f"abkit-live-registry:{self.path.name}", daemon=True
            )
            self._thread.start()

    def _after_fork(self) -> None:
        """In a child forked from the service (a pre-fork server's worker): threads do not
        survive ``fork``, so the child follows the file with a thread of its own."""
        self._lock = threading.RLock()
        self._start_thread()

    # -- serving ----------------------------------------------------------------------
    @property
    def version(self) -> Version:
        return self._version

    @property
    def registry(self) -> Registry:
        return self._version.registry

    def assign(
        self,
        key: str,
        unit_id: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        now: datetime | None = None,
        expose: bool = True,
    ) -> Assignment:
        """:func:`~abkit.assignment.assign.assign` on the current version of ``key``."""
        experiment = self._by_key.get(key)
        if experiment is None:
            experiment = self.registry[key]  # raises UnknownExperimentError, listing keys
        if now is None and expose:  # the request path: no keyword arguments to bind
            return _assign(experiment, unit_id, attributes)
        return _assign(experiment, unit_id, attributes, now=now, expose=expose)

    def experiment(self, key: str) -> LiveExperiment:
        """A handle on ``key`` that follows new versions (pass it to ``assign``). If a
        later version drops ``key`` (only drafts may go), the handle keeps the last one."""
        handle = self._handles.get(key)
        if handle is None:
            with self._lock:  # not between a swap and the rebinding of the handles
                handle = self._handles.get(key) or LiveExperiment(self.registry[key])
                self._handles[key] = handle
        return handle

    def __getitem__(self, key: str) -> Experiment:
        return self.registry[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.registry)

    def __len__(self) -> int:
        return len(self.registry)

    # -- following the file -----------------------------------------------------------
    def refresh(self) -> bool:
        """Check the file now; True when a new version was swapped in."""
        with self._lock:
            try:
                return self._refresh()
            except ConfigError as exc:
                self._report(exc)
            except Exception as exc:  # a loader bug must not stop the service following
                self._report(
                    ConfigError(f"cannot load the new version: {exc!r}", file=str(self.path))
                )
            return False

    def close(self) -> None:
        """Stop following the file (the version served stays available)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.poll_interval + 1.0)

    def __enter__(self) -> LiveRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.wait(self._next_wait()):
            self.refresh()

    def _next_wait(self) -> float:
        wake = self._wake_at_ns
        if wake is None:
            return self.poll_interval
        return min(self.poll_interval, max(0.01, (wake - time.monotonic_ns()) / 1e9 + 0.01))

    def _refresh(self) -> bool:
        self._wake_at_ns = None
        previous = self._signature
        try:
            content, signature = self._read()
        except ConfigError as exc:
            # a file that comes back is a new file (its inode number may be the old one's)
            self._signature = None
            raise ConfigError(
                f"{exc.message}; serving the last good version", file=str(self.path)
            ) from None
        if content is None or signature is None:
            return False  # being written: the next poll reads the finished file
        self._signature = signature
        digest = hashlib.sha256(content).hexdigest()
        if self._pending is not None and self._pending[0] != digest:
            # another content came between: the candidate's quiet time starts again
            self._pending = None
        if digest == self._version.content_hash:
            self._pending = None
            return False
        if digest == self._rejected:
            return False
        now = time.monotonic_ns()
        if self._pending is None or self._pending[0] != digest:
            self._rejected = digest  # until it validates: report each bad version once
            if not content.strip():
                raise ConfigError(
                    "the registry file is empty; serving the last good version",
                    file=str(self.path),
                )
            registry = self._loader(content, str(self.path))
            self._check_nothing_live_vanished(registry)
            self._rejected = None
            self._pending = (digest, now, registry)
        _, first_seen, registry = self._pending
        in_place = previous is not None and previous[2] == signature[2]
        if in_place and now - first_seen < _QUIET_NS:
            # rewritten in place: maybe a prefix of what is being written. Served once it
            # has stayed the same for _QUIET_NS by this host's clock (the file system's
            # time stamps may be coarse, or set by another machine's clock)
            self._wake_at_ns = first_seen + _QUIET_NS
            return False
        self._pending = None
        self._install(registry, content, signature)
        self.reloads += 1
        if self._on_change is not None:
            try:
                self._on_change(self._version)
            except Exception:
                logging.getLogger(LOGGER_NAME).exception("LiveRegistry on_change hook failed")
        return True

    def _read(self) -> tuple[bytes | None, tuple[int, int, int] | None]:
        """The file's bytes, or None when it changed during the read."""
        try:
            before = os.stat(self.path)
            content = self.path.read_bytes()
            after = os.stat(self.path)
        except FileNotFoundError:
            raise ConfigError("registry file not found", file=str(self.path)) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot read the registry file: {exc.strerror or exc}", file=str(self.path)
            ) from None
        sig = (after.st_mtime_ns, after.st_size, after.st_ino)
        if (before.st_mtime_ns, before.st_size, before.st_ino) != sig or len(
            content
        ) != after.st_size:
            return None, None
        return content, sig

    def _install(
        self, registry: Registry, content: bytes, signature: tuple[int, int, int] | None
    ) -> None:
        version = Version(registry, hashlib.sha256(content).hexdigest(), time.time())
        by_key = dict(registry.experiments)
        # One reference each, version last: a reader holding either sees a whole version.
        self._by_key = by_key
        self._version = version
        self._signature = signature
        for key, handle in list(self._handles.items()):
            if key in by_key:
                handle._rebind(by_key[key])

    def _check_nothing_live_vanished(self, registry: Registry) -> None:
        gone = [
            key
            for key, exp in self._by_key.items()
            if key not in registry and exp.status in ("running", "paused")
        ]
        if gone:
            raise ConfigError(
                f"experiment {gone[0]!r} is {self._by_key[gone[0]].status} in the version "
                "served but missing from the new file (truncated or damaged?); end an "
                'experiment with status = "stopped" before removing it. Serving the last '
                "good version",
                file=str(self.path),
                field="key",
            )

    def _report(self, exc: ConfigError) -> None:
        self.errors += 1
        self.last_error = exc
        if self._on_error is not None:
            try:
                self._on_error(exc)
                return
            except Exception:
                logging.getLogger(LOGGER_NAME).exception("LiveRegistry on_error hook failed")
        logging.getLogger(LOGGER_NAME).warning("%s", exc)

    def _default_loader(self, content: bytes, source: str) -> Registry:
        return parse_registry(content, source=source, fmt=_format_of(self.path)).registry


# Registries of this process, for :meth:`LiveRegistry._after_fork` (weakly: one that is
# collected is simply gone).
# (by id: a Mapping is not hashable)
_REGISTRIES: weakref.WeakValueDictionary[int, LiveRegistry] = weakref.WeakValueDictionary()


def _after_fork_in_child() -> None:
    for registry in list(_REGISTRIES.values()):
        registry._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
