"""Shared plumbing of the benchmarks: worker subprocesses, /proc readings, drain detection, machine facts.

Every benchmark starts real processes (`celery worker`, `gunicorn`) on this host and measures them from
outside; nothing here runs at import.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = [
    "ROOT",
    "free_port",
    "cpu_seconds",
    "rss_kib",
    "children",
    "load_average",
    "machine",
    "Worker",
    "queue_waiting",
    "wait_drained",
    "bench_env",
    "env_vars",
    "wait_log",
    "fresh_data_dir",
    "scratch_postgres",
]

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """Direct children of `pid` (the prefork pool, gunicorn's workers)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of `pid` and its live direct children, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def rss_kib(pid: int) -> int:
    """Resident set size of `pid` in KiB (0 when gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    """Cores, CPU model, Python and the load average when called."""
    model = ""
    try:
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "python": sys.version.split()[0], "loadavg": load_average()}


def bench_env(broker: str, data_dir: str, **extra: str) -> dict:
    """Environment for a benchmark process: the broker, a private data dir, a free metrics port."""
    env = {
        **os.environ,
        "COACHUP_BROKER_URL": broker,
        "COACHUP_DATA_DIR": data_dir,
        "COACHUP_WORKER_METRICS_PORT": str(free_port()),
        "COACHUP_WORKER_METRICS_HOST": "127.0.0.1",
        "COACHUP_LOG_LEVEL": "INFO",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


class Worker:
    """One `celery -A <app> worker` subprocess in its own session; `stop()` ends the whole group."""

    def __init__(
        self,
        app: str,
        env: dict,
        *,
        concurrency: int = 2,
        name: str = "bench",
        extra: tuple[str, ...] = (),
        cwd: Path | str = ROOT,
    ) -> None:
        """`cwd`: the source tree the worker imports (another checkout measures the code before a change)."""
        self.log_path = Path(tempfile.mkdtemp(prefix="coachup-bench-log-")) / "worker.log"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app,
            "worker",
            "-Q",
            "assessments",
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
            *extra,
        ]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"worker exited ({self.proc.returncode}); see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


def queue_waiting(broker: str, queue: str = "assessments", data_dir: str | None = None) -> tuple[int, int]:
    """(waiting, in flight) for `queue` on Redis or the embedded Redis (LLEN, unacked hash)."""
    from workers.brokers.redis import redis_counts

    # kombu keeps one list per priority step: every one of them counts
    waiting, held = redis_counts(_redis(broker), [queue])
    return waiting[queue], held[queue]


_clients: dict = {}


def _redis(url: str):
    import redis

    if url not in _clients:  # the embedded broker's `redis+socket://` is redis-py's `unix://`
        _clients[url] = redis.Redis.from_url(url.replace("redis+socket://", "unix://"))
    return _clients[url]


def wait_drained(
    broker: str,
    n: int,
    workers: list[Worker],
    *,
    data_dir: str | None = None,
    timeout: float = 300.0,
    start_now: bool = False,
) -> tuple[float, float]:
    """Wait for `n` waiting messages to be taken and done: (elapsed s from the first take, CPU s of workers).

    `start_now`: the clock starts at the call (the messages were just released to ready workers).
    """
    deadline = time.monotonic() + timeout
    started = cpu0 = None
    if start_now:
        started, cpu0 = time.perf_counter(), sum(cpu_seconds(w.pid) for w in workers)
    while time.monotonic() < deadline:
        waiting, in_flight = queue_waiting(broker, data_dir=data_dir)
        if started is None and waiting < n:
            started, cpu0 = time.perf_counter(), sum(cpu_seconds(w.pid) for w in workers)
        if started is not None and waiting == 0 and in_flight == 0:
            elapsed, cpu = time.perf_counter() - started, sum(cpu_seconds(w.pid) for w in workers) - cpu0
            # kombu pops a message before it records it as unacked: confirm the empty reading once more
            time.sleep(0.05)
            if queue_waiting(broker, data_dir=data_dir) == (0, 0):
                return elapsed, cpu
        for w in workers:
            w.check()
        time.sleep(0.005)
    raise RuntimeError(f"not drained within {timeout} s")


class env_vars:
    """Temporarily set environment variables in this process (the publisher side builds apps from them)."""

    def __init__(self, **values: str) -> None:
        self._values = values
        self._saved: dict = {}

    def __enter__(self):
        from bench import apps

        apps._apps.clear()
        self._saved = {k: os.environ.get(k) for k in self._values}
        os.environ.update(self._values)
        return self

    def __exit__(self, *exc) -> None:
        from bench import apps

        apps._apps.clear()
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def wait_log(worker: Worker, text: str, timeout: float = 60.0) -> None:
    """Wait until `text` appears in the worker's log (e.g. `ready.`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.check()
        if text.encode() in worker.log_path.read_bytes():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{text!r} not in {worker.log_path} within {timeout} s")


def fresh_data_dir(broker: str) -> str:
    """A new data dir with the embedded broker's folders; on Redis the benchmark database is flushed."""
    if broker.startswith("redis"):
        _redis(broker).flushdb()
    data_dir = tempfile.mkdtemp(prefix="coachup-bench-")
    os.makedirs(os.path.join(data_dir, "broker", "control"), exist_ok=True)
    return data_dir


class scratch_postgres:
    """A fresh PostgreSQL database for one benchmark, dropped afterwards: `with scratch_postgres() as url:`.

    The server is `BENCH_PG_ADMIN_URL` (default: the tests' `postgresql+psycopg://postgres@127.0.0.1:5432/test`);
    the database is created beside the admin one and named `coachup_bench_<hex>`."""

    def __init__(self, admin_url: str | None = None) -> None:
        import uuid

        self._admin_url = admin_url or os.environ.get(
            "BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
        self.name = "coachup_bench_" + uuid.uuid4().hex[:10]
        self.url = self._admin_url.rsplit("/", 1)[0] + "/" + self.name

    def _run(self, statement: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self._admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()

    def __enter__(self) -> str:
        self._run(f'CREATE DATABASE "{self.name}"')
        return self.url

    def __exit__(self, *exc) -> None:
        self._run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
