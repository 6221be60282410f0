"""Both launchers get multiprocess metrics right: `coachup api` (gunicorn, 2 worker processes) and
`coachup worker` (prefork, embedded broker). Each wipes its directory at start; counts add up across
processes whichever process answers the scrape.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from coachup.settings import load_settings
from tests.conftest import TEST_HASH_SECRET
from tests.observability.promtext import value
from tests.support.services import EmbeddedBrokerServer, free_port, require
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read()


def _answers(url: str) -> bool:
    """True once a worker answers (gunicorn accepts on its socket before its workers have booted)."""
    try:
        _get(url)
        return True
    except OSError:
        return False


class _Launched:
    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = open(log, "ab")
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "COACHUP_ENV": "test",
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "NO_PROXY": "127.0.0.1,localhost",
        **extra,
    }


def _plant_stale(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "counter_999999.db").write_bytes(b"left by an earlier run")


def test_gunicorn_api_with_two_workers_counts_every_request(tmp_path):
    # Given `coachup api` with 2 gunicorn workers and a stale file in its metrics directory
    port = free_port()
    env = _env(tmp_path, COACHUP_API_PORT=str(port), COACHUP_API_WORKERS="2")
    folder = load_settings(env).metrics_root / f"api-{port}"
    _plant_stale(folder)
    api = _Launched([sys.executable, "-m", "coachup.cli", "api"], env, tmp_path / "api.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: _answers(base + "/openapi.json"), timeout=60, interval=0.2, what="gunicorn workers to answer"
        )  # not /health: the test counts those
        # When 40 requests arrive on fresh connections (spread over both workers)
        for _ in range(40):
            assert json.loads(_get(base + "/health")) == {"status": "ok"}
        # Then every scrape, whichever worker answers it, sees all 40
        for _ in range(6):
            text = _get(base + "/metrics").decode()
            assert value(text, "coachup_http_requests_total", route="GET /health", method="GET", status="200") == 40
        body = json.loads(_get(base + "/api/metrics"))
        samples = body["metrics"]["coachup_http_requests"]["samples"]
        assert sum(s["value"] for s in samples if s["labels"]["route"] == "GET /health") == 40
        # And the directory was wiped at start: only the live workers' files are there
        names = os.listdir(folder)
        assert "counter_999999.db" not in names and any(n.startswith("counter_") for n in names)
        promtool = shutil.which("promtool")
        require(promtool is not None, "promtool (Debian package prometheus)")
        check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        api.stop()


def test_coachup_worker_serves_metrics_and_embedded_queue_depth(tmp_path):
    # Given `coachup worker` on the embedded broker, consuming only the assessments queue
    port = free_port()
    env = _env(
        tmp_path,
        COACHUP_WORKER_METRICS_PORT=str(port),
        COACHUP_WORKER_METRICS_HOST="127.0.0.1",
        COACHUP_QUEUE_DEPTH_INTERVAL_S="0.2",
    )
    settings = load_settings(env)
    folder = settings.metrics_root / f"worker-{port}"
    _plant_stale(folder)
    from coachup.store import create_store
    from workers import create_celery

    create_store(settings.database_url)
    broker = EmbeddedBrokerServer(settings)  # what `make run` starts first
    worker = _Launched(
        [
            sys.executable,
            "-m",
            "coachup.cli",
            "worker",
            "-Q",
            "assessments",
            "-c",
            "2",
            "-n",
            "launch@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        env,
        tmp_path / "worker.log",
    )
    try:
        wait_until(
            lambda: " ready." in (tmp_path / "worker.log").read_text(errors="replace"),
            timeout=60,
            interval=0.1,
            what="coachup worker ready",
        )
        # When 3 dead letters sit on the broker's deadletter queue
        app = create_celery(settings)
        for _ in range(3):
            app.send_task("deadletter.probe", args=["job"], queue="deadletter")
        # Then the endpoint reports them from the broker itself, and the stale file is gone
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(
            lambda: value(_get(url).decode(), "coachup_queue_depth", queue="deadletter") == 3,
            timeout=15,
            interval=0.1,
            what="embedded deadletter depth",
        )
        assert "counter_999999.db" not in os.listdir(folder)
    finally:
        worker.stop()
        broker.close()
