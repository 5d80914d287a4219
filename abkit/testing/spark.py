"""A throw-away Spark standalone cluster, with a Spark Connect server, on loopback.

Used by the test suite and the benchmarks. Everything runs from the jars that the
``pyspark`` package installs (``pip install pyspark`` ships a full Spark without the
``sbin/start-*.sh`` scripts), so the daemons are started with ``bin/spark-class``:

* a master (``org.apache.spark.deploy.master.Master``) on a free port of 127.0.0.1;
* one worker (``org.apache.spark.deploy.worker.Worker``) with few cores and little memory;
* optionally a Spark Connect server (``org.apache.spark.sql.connect.service.
  SparkConnectServer`` through ``spark-submit``) whose driver runs its jobs on that cluster.

A Java runtime (17 or later) must be on ``PATH`` or under ``JAVA_HOME``. Readiness is
judged from the master's JSON status page (the worker is ``ALIVE``) and from the Connect
server's gRPC port accepting connections; every process, with its children, is ended on
exit and the temporary directory deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

# Small, because the test machine has two cores shared with everything else; the Connect
# server's driver dies at start with much less than this (it loads the whole SQL engine).
DAEMON_MEMORY = "512m"
EXECUTOR_MEMORY_MB = 512
DRIVER_MEMORY = "768m"
# Short-lived JVMs on a small machine: the C1 compiler only (the C2 compiler's threads
# spend more CPU warming up than a test's few dozen queries ever win back: a cold analysis
# took 98 s with it and 39 s without it on the shared 2-core machine) and the serial
# collector (no parallel GC threads competing for two cores). Long benchmarks turn it off.
QUICK_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


class SparkUnavailable(RuntimeError):
    """No Java runtime, or no pyspark installation, on this machine."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spark_home() -> Path:
    """The Spark distribution inside the installed ``pyspark`` package."""
    try:
        import pyspark
    except ImportError as exc:
        raise SparkUnavailable("pyspark is not installed (pip install 'abkit[spark]')") from exc
    home = Path(pyspark.__file__).parent
    if not (home / "bin" / "spark-class").exists() or not (home / "jars").is_dir():
        raise SparkUnavailable(f"pyspark at {home} has no bin/spark-class or jars/")
    return home


def java_executable() -> str:
    """``$JAVA_HOME/bin/java`` or ``java`` on ``PATH``."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise SparkUnavailable(
            "no Java runtime found (install Debian's openjdk-17-jre-headless or set JAVA_HOME)"
        )
    return found


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the process that started us dies, so a
    test run killed from outside leaves no Spark daemon behind (Linux ``PR_SET_PDEATHSIG``;
    elsewhere the ``stop`` in ``__exit__`` is the only clean-up)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class TemporarySparkCluster:
    """Context manager: a master, one worker and (``connect=True``) a Spark Connect server.

    >>> with TemporarySparkCluster() as cluster:     # doctest: +SKIP
    ...     cluster.master_url, cluster.connect_url  # spark://127.0.0.1:p, sc://127.0.0.1:q
    """

    def __init__(
        self,
        *,
        cores: int = 2,
        connect: bool = True,
        executor_memory_mb: int = EXECUTOR_MEMORY_MB,
        start_timeout: float = 600.0,
        quick_jvm: bool = True,
    ) -> None:
        self.home = spark_home()
        self.java = java_executable()
        self.cores = cores
        self.connect = connect
        self.executor_memory_mb = executor_memory_mb
        self.start_timeout = start_timeout
        self.quick_jvm = quick_jvm
        self.master_port = 0
        self.master_ui_port = 0
        self.connect_port = 0
        self._workdir: Path | None = None
        self._procs: list[subprocess.Popen[bytes]] = []

    # ------------------------------------------------------------------ urls
    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def connect_url(self) -> str:
        if not self.connect:
            raise RuntimeError("this cluster was started without a Spark Connect server")
        return f"sc://127.0.0.1:{self.connect_port}"

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError("the cluster is not running")
        return self._workdir

    # ------------------------------------------------------------------ processes
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            SPARK_HOME=str(self.home),
            JAVA_HOME=str(Path(self.java).resolve().parent.parent),
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_LOCAL_DIRS=str(self.workdir / "local"),
            SPARK_WORKER_DIR=str(self.workdir / "worker"),
            SPARK_LOG_DIR=str(self.workdir / "logs"),
            SPARK_DAEMON_MEMORY=DAEMON_MEMORY,
            SPARK_DAEMON_JAVA_OPTS=QUICK_JVM_OPTIONS,  # the master and the worker
            PYSPARK_PYTHON=sys.executable,
        )
        return env

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self._procs.append(
            subprocess.Popen(
                argv,
                cwd=self.workdir,
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped with its children
                preexec_fn=_die_with_parent,
            )
        )
        log.close()

    def _wait(self, what: str, ready: object, deadline: float) -> None:
        assert callable(ready)
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a Spark process exited early:\n{self._tail_logs()}")
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(
            f"Spark {what} not ready in {self.start_timeout:.0f} s:\n{self._tail_logs()}"
        )

    def _tail_logs(self) -> str:
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def _worker_alive(self) -> bool:
        url = f"http://127.0.0.1:{self.master_ui_port}/json/"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status = json.load(response)
        except (OSError, ValueError):
            return False
        return any(w.get("state") == "ALIVE" for w in status.get("workers", []))

    def start(self) -> TemporarySparkCluster:
        self._workdir = Path(tempfile.mkdtemp(prefix="abkit-spark-"))
        for sub in ("local", "worker", "logs"):
            (self.workdir / sub).mkdir()
        spark_class = str(self.home / "bin" / "spark-class")
        self.master_port, self.master_ui_port = free_port(), free_port()
        deadline = time.monotonic() + self.start_timeout
        try:
            self._spawn(
                "master",
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    "--host", "127.0.0.1",
                    "--port", str(self.master_port),
                    "--webui-port", str(self.master_ui_port),
                ],
            )  # fmt: skip
            self._wait("master", lambda: _port_open(self.master_port), deadline)
            self._spawn(
                "worker",
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    "--host", "127.0.0.1",
                    "--port", str(free_port()),
                    "--webui-port", str(free_port()),
                    # room for two applications at once: the Connect server's and a
                    # classic session's (the worker's cores and memory are only quotas)
                    "--cores", str(2 * self.cores),
                    "--memory", f"{2 * self.executor_memory_mb}m",
                    "--work-dir", str(self.workdir / "worker"),
                    self.master_url,
                ],
            )  # fmt: skip
            # the Connect server registers with the master and waits for executors: it
            # starts alongside the worker rather than after it
            if self.connect:
                self.connect_port = free_port()
                self._spawn(
                    "connect",
                    [
                        str(self.home / "bin" / "spark-submit"),
                        "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
                        "--name", "abkit-connect",
                        "--master", self.master_url,
                        "--driver-memory", DRIVER_MEMORY,
                        *self.spark_conf_args(),
                        "--conf", f"spark.connect.grpc.binding.port={self.connect_port}",
                        "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
                    ],
                )  # fmt: skip
            self._wait("worker", self._worker_alive, deadline)
            if self.connect:
                self._wait("Connect server", lambda: _port_open(self.connect_port), deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def spark_conf(self) -> dict[str, str]:
        """Settings for a session on this cluster: little memory, few shuffle partitions
        (and, with ``quick_jvm``, JIT options for short runs on the driver and executors)."""
        conf = {
            "spark.executor.memory": f"{self.executor_memory_mb}m",
            "spark.executor.cores": str(self.cores),
            "spark.cores.max": str(self.cores),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.sql.shuffle.partitions": str(self.cores),
            "spark.sql.session.timeZone": "UTC",
            "spark.ui.enabled": "false",
            "spark.local.dir": str(self.workdir / "local"),
        }
        if self.quick_jvm:
            conf["spark.driver.extraJavaOptions"] = QUICK_JVM_OPTIONS
            conf["spark.executor.extraJavaOptions"] = QUICK_JVM_OPTIONS
        return conf

    def spark_conf_args(self) -> list[str]:
        args: list[str] = []
        for key, value in self.spark_conf().items():
            args += ["--conf", f"{key}={value}"]
        return args

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in reversed(self._procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self._procs.clear()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> TemporarySparkCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
