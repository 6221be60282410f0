"""A real Celery worker subprocess (`celery -A workers worker`), its JSON log captured to a file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from coachup.jobs import worker_queues

from .wait import wait_until


def log_events(text: str, name: str | None = None) -> list[dict]:
    """The JSON log records in a process's log `text` (only those of event `name` when given)."""
    out = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if name is None or record.get("event") == name:
            out.append(record)
    return out


ALL_QUEUES = ",".join(worker_queues(test_tasks=True))  # every queue a kind is routed to, from the registry


class WorkerProcess:
    KIND, READY = "worker", " ready."  # what the process is, and the log text that says it is up

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        name: str,
        queues: str = ALL_QUEUES,
        concurrency: int = 2,
        extra: list[str] | None = None,
    ) -> None:
        self._spawn(
            env,
            log_path,
            name,
            [
                "worker",
                "-Q",
                queues,
                "-c",
                str(concurrency),
                "-n",
                f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
                *(extra or []),
            ],
        )

    def _spawn(self, env: dict[str, str], log_path: Path, name: str, args: list[str]) -> None:
        """`celery -A workers <args>` from the project root, stdout and stderr into `log_path`."""
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", *args],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
        )

    def wait_ready(self, timeout: float = 60):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.KIND} exited early ({self.proc.returncode}):\n{self.log_text()[-3000:]}")
            return self.READY in self.log_text()

        wait_until(ready, timeout=timeout, interval=0.1, what=f"{self.KIND} ready")
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        """The last `lines` lines of the worker's log, for a failure message."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def events(self, name: str | None = None) -> list[dict]:
        return log_events(self.log_text(), name)

    def task_events_on(self) -> bool:
        """Flower (or `celery control enable_events`) has turned this worker's task events on: they are off
        until someone watches (celeryconfig.py), and Celery logs the remote switch."""
        return "enabled by remote" in self.log_text()

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class BeatProcess(WorkerProcess):
    """A real `celery -A workers beat` subprocess (the scheduler `make run` starts), log captured to a file."""

    KIND, READY = "beat", "beat: Starting"

    def __init__(self, env: dict[str, str], log_path: Path, *, name: str = "beat") -> None:
        self._spawn(env, log_path, name, ["beat", "--loglevel", "INFO"])


def pool_children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (the prefork pool of a worker's main process)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out
