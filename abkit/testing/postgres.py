"""A throw-away PostgreSQL server started from the installed binaries.

Used by the test suite and the benchmarks: ``initdb`` a fresh cluster in a temporary
directory, start it with ``pg_ctl`` on a free loopback port, hand out databases, and stop
and delete everything on exit. PostgreSQL refuses to run as root, so when we are root the
server runs as the ``postgres`` system user (created by Debian's package) or ``nobody``.
Durability settings are off: this server holds nothing worth keeping.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

DEFAULT_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries were found on this machine."""


def find_bin_dir() -> Path:
    """Return the directory holding ``initdb`` and ``pg_ctl``.

    ``ABKIT_PG_BIN`` wins; then PostgreSQL 15 where Debian installs it; then any other
    installed major version, newest first.
    """
    candidates = [os.environ.get("ABKIT_PG_BIN", ""), *DEFAULT_BIN_DIRS]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's "
        "postgresql-15 package or set ABKIT_PG_BIN"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service_user() -> str | None:
    """The unprivileged user to run the server as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and no 'postgres' or 'nobody' user exists")


class TemporaryPostgres:
    """Context manager: a running PostgreSQL cluster on 127.0.0.1.

    >>> with TemporaryPostgres() as pg:           # doctest: +SKIP
    ...     url = pg.create_database()
    """

    def __init__(self, *, bin_dir: Path | None = None, user: str = "abkit") -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.user = user
        self.port = 0
        self._workdir: Path | None = None
        self._os_user = _service_user()

    def _run(self, *argv: str) -> None:
        command = list(argv)
        if self._os_user is not None:
            command = ["runuser", "-u", self._os_user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(argv[0]).name} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )

    @property
    def data_dir(self) -> Path:
        assert self._workdir is not None
        return self._workdir / "data"

    def start(self) -> TemporaryPostgres:
        self._workdir = Path(tempfile.mkdtemp(prefix="abkit-pg-"))
        if self._os_user is not None:
            entry = pwd.getpwnam(self._os_user)
            os.chown(self._workdir, entry.pw_uid, entry.pw_gid)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        self.port = free_port()
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self._workdir}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=100",
            ]
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-o",
            options,
            "-l",
            str(self._workdir / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        conninfo = f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # name is ours, never user input
        return self.url(name)

    def stop(self) -> None:
        if self._workdir is None:
            return
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                )
        finally:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
