"""The real API server (`coachup api`: gunicorn, gthread workers, web/gunicorn_conf.py) as a subprocess on a
free port, with its JSON log captured to a file so a test can read the events it wrote."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from .services import free_port
from .wait import wait_until
from .worker import log_events

ROOT = Path(__file__).resolve().parents[2]


class ApiServer:
    """`python -m coachup.cli api` with `env`; `url` (also `base`) once `/health` answers from a worker."""

    def __init__(self, env: dict[str, str], log_path: Path, *, workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "ab")
        env = {
            **env,
            "COACHUP_API_HOST": "127.0.0.1",
            "COACHUP_API_PORT": str(self.port),
            "NO_PROXY": "127.0.0.1,localhost",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coachup.cli", "api", "--workers", str(workers)],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )

    @property
    def base(self) -> str:
        return self.url

    def wait_ready(self, timeout: float = 60) -> ApiServer:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"api exited ({self.proc.returncode}):\n{self.log_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    return resp.status == 200
            except OSError:  # gunicorn accepts before its workers have booted
                return False

        wait_until(ready, timeout=timeout, interval=0.1, what="the API to answer /health")
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, name: str | None = None) -> list[dict]:
        """The JSON log records the API wrote (only those of event `name` when given)."""
        return log_events(self.log_text(), name)

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
