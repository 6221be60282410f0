"""Issue 16, finding 8: `coachup run` is one system. A dead child is started again, SIGHUP (the terminal
closed) stops every process, a killed supervisor takes its children with it, and a second `coachup run` on the
same data dir is refused with a clear message.

Runs the real `coachup run` (embedded broker, API, worker, scheduler, Flower) on free ports and a private data dir.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.services import free_port
from tests.support.wait import wait_until

from .record import record

pytestmark = pytest.mark.drill
ROOT = Path(__file__).resolve().parents[2]


def _processes_using(marker: str) -> list[int]:
    """Pids whose environment names `marker` (the private data dir): every process of that `coachup run`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "environ").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Run:
    """One `coachup run` in its own session (as a terminal's job), its stderr in a file."""

    def __init__(self, tmp: Path, data_dir: Path, name: str) -> None:
        self.api_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COACHUP_", "FLOWER_", "AI_PROVIDER"))}
        env.update(
            COACHUP_API_PORT=str(self.api_port),
            COACHUP_FLOWER_PORT=str(free_port()),
            COACHUP_WORKER_METRICS_PORT=str(free_port()),
            COACHUP_DATA_DIR=str(data_dir),
        )
        self.err_path = tmp / f"{name}.err"
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coachup.cli", "run"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._err,
            start_new_session=True,
        )

    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("coachup run exited: " + self.err()[-2000:])
        try:
            return requests.get(f"http://127.0.0.1:{self.api_port}/api/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._err.close()


def _worker_pid(supervisor: int) -> int | None:
    """The first worker instance's main process (`coachup@%h`; `coachup run` starts one instance per core, the
    others are `coachup2@%h`, ...): the supervisor's own child running the Celery worker."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            cmdline = _cmdline(int(proc.name))
            if ppid == supervisor and " worker" in cmdline and " coachup@%h" in cmdline:
                return int(proc.name)
    return None


def test_coachup_run_restarts_a_dead_child_and_stops_whole_on_sighup(tmp_path):
    data_dir = tmp_path / f"var-{uuid.uuid4().hex[:6]}"
    first = Run(tmp_path, data_dir, "first")
    try:
        wait_until(first.healthy, timeout=180, interval=0.5, what="coachup run to report healthy")
        # a second `coachup run` on the same data dir: refused at once, nothing of the first disturbed
        second = subprocess.run(
            [sys.executable, "-m", "coachup.cli", "run"],
            cwd=ROOT,
            env={**os.environ, "COACHUP_DATA_DIR": str(data_dir), "COACHUP_API_PORT": str(free_port())},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0 and "already runs on" in second.stderr, second.stderr[-1000:]
        second_code = second.returncode
        # a dead child (the worker, SIGKILLed) is started again; the supervisor stays up
        old = wait_until(lambda: _worker_pid(first.proc.pid), timeout=60, what="the worker process")
        os.kill(old, signal.SIGKILL)
        new = wait_until(
            lambda: (p := _worker_pid(first.proc.pid)) not in (None, old) and p,
            timeout=60,
            interval=0.2,
            what="the worker to be started again",
        )
        assert first.proc.poll() is None, first.err()[-2000:]
        wait_until(lambda: "worker exited with" in first.err(), timeout=10, what=f"the restart line ({old} -> {new})")
        processes = len(_processes_using(str(data_dir)))
        # the terminal closes: SIGHUP to the supervisor's process group
        os.killpg(first.proc.pid, signal.SIGHUP)
        first.proc.wait(timeout=60)
        wait_until(lambda: not _processes_using(str(data_dir)), timeout=60, interval=0.5, what="no process left")
        record(
            "fault",
            "12. coachup run: second run, dead worker, SIGHUP",
            secondRunExitCode=second_code,
            workerRestarted=int(new != old),
            processesBeforeHup=processes,
            processesLeft=len(_processes_using(str(data_dir))),
        )
    finally:
        first.close()


def test_children_die_with_a_killed_supervisor(tmp_path):
    data_dir = tmp_path / f"var-{uuid.uuid4().hex[:6]}"
    run = Run(tmp_path, data_dir, "killed")
    try:
        wait_until(run.healthy, timeout=180, interval=0.5, what="coachup run to report healthy")
        processes = len(_processes_using(str(data_dir)))
        os.kill(run.proc.pid, signal.SIGKILL)  # the supervisor only, as the OOM killer would
        run.proc.wait()
        wait_until(lambda: not _processes_using(str(data_dir)), timeout=60, interval=0.5, what="no process left")
        left = len(_processes_using(str(data_dir)))
        record("fault", "13. coachup run SIGKILLed", processesBefore=processes, processesLeft=left)
    finally:
        for pid in _processes_using(str(data_dir)):  # a failed run must not leave them to the rest of the suite
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        run.close()
