"""The default setup (`make run`: the embedded broker, nothing configured) loses nothing when its worker is
SIGKILLed mid-job: the message stays unacknowledged in the embedded Redis (on disk, in its append-only file),
the supervisor starts a new worker, and the message is delivered to it again and the job finishes, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from coachup.settings import load_settings
from tests.support.wait import wait_until
from tests.support.worker import pool_children

ROOT = Path(__file__).resolve().parents[2]


def _run(env: dict, log: Path) -> subprocess.Popen:
    out = open(log, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "coachup.cli", "run"], cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
    )


def _worker_pid(data_dir: Path) -> int | None:
    """A Celery worker main process among `coachup run`'s children (one with a prefork pool)."""
    pids = _worker_pids(data_dir)
    return pids[0] if pids else None


def _worker_pids(data_dir: Path) -> list[int]:
    """Every Celery worker main process among `coachup run`'s children (one instance per core)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"worker" in cmd and b"celery" in b" ".join(cmd) and str(data_dir).encode() in environ:
            if pool_children(int(proc.name)):
                found.append(int(proc.name))
    return found


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.drill
def test_a_worker_killed_mid_job_under_make_run_loses_nothing(tmp_path):
    from tests.support.services import free_port

    data_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COACHUP_", "FLOWER_", "AI_PROVIDER"))}
    env.update(
        COACHUP_DATA_DIR=str(data_dir),
        COACHUP_API_PORT=str(free_port()),
        COACHUP_FLOWER_PORT=str(free_port()),
        COACHUP_WORKER_METRICS_PORT="0",
        COACHUP_TEST_TASKS="1",
        # a short visibility timeout: an orphaned (unacked) message is handed out again after 15 s, not 1 h
        COACHUP_VISIBILITY_TIMEOUT_S="15",
        ASSESSMENTS_BACKOFF_MAX_MS="2000",
        ASSESSMENT_GROUP_TIMEOUT_MS="5000",
    )
    log = tmp_path / "run.log"
    run = _run(env, log)
    key = str(uuid.uuid4())
    runs = data_dir / "testing" / "runs" / key
    try:
        wait_until(lambda: _worker_pid(data_dir), timeout=120, interval=0.2, what="make run's worker")
        # Given a job in progress on the default setup
        from workers import create_celery

        app = create_celery(load_settings(env))
        app.send_task("testing.slow", args=[key, 6.0], task_id=key, ignore_result=True)
        wait_until(runs.exists, timeout=60, interval=0.1, what="the job to start")

        # When its worker (main process and pool) is SIGKILLed: `coachup run` starts a new worker (issue 16,
        # finding 8), the broker and the other children untouched
        killed = _worker_pids(data_dir)  # every instance: the job's is among them
        for pid in killed:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        assert not (data_dir / "testing" / "effects" / key).exists()

        # Then the new worker gets the job again (after the visibility timeout) and it finishes, exactly once
        wait_until(
            lambda: (data_dir / "testing" / "effects" / key).exists(),
            timeout=120,
            interval=0.2,
            what="the killed job to run again and finish: " + log.read_text(errors="replace")[-1500:],
        )
        assert len(runs.read_text().splitlines()) == 2  # the killed run and the one that finished
        assert run.poll() is None and _worker_pid(data_dir) not in (None, *killed)  # same supervisor, new worker
    finally:
        _stop(run)
