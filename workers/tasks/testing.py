"""Test-only tasks for the fault drills; registered only when `COACHUP_TEST_TASKS=1`.

Effects are files under `COACHUP_DATA_DIR/testing/`, so the drills can count them from outside:
`runs/<task id>` gets one line per run of the body, `effects/<task id>` is created once (the idempotent
effect, like a stored assessment), and `fixed/<task id>` marks "the cause was fixed" for `testing.fixable`.
"""

from __future__ import annotations

import os
import signal
import time

from coachup.errors import UpstreamRejected, UpstreamUnavailable

from ..base import task_options

__all__ = ["register"]


def _dir(task, name: str):
    path = task.runtime.settings.data_dir / "testing" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _record_run(task, key: str) -> None:
    with open(_dir(task, "runs") / key, "a") as fh:
        fh.write(f"{time.time():.6f} {task.request.retries}\n")


def _effect_once(task, key: str) -> bool:
    try:
        os.close(os.open(_dir(task, "effects") / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def register(app) -> None:
    def opts(name: str, **extra) -> dict:  # every test task is of the `testing` kind (`coachup.jobs`)
        return task_options(app, "testing", name=name, ignore_result=True, **extra)

    @app.task(**opts("testing.flaky"))
    def flaky(self, key: str, succeed_on: int = 3) -> str:
        """Fails retryably until attempt `succeed_on`."""
        _record_run(self, key)
        if self.request.retries + 1 < succeed_on:
            raise UpstreamUnavailable("provider answered 503")
        _effect_once(self, key)
        return "ok"

    @app.task(**opts("testing.permanent"))
    def permanent(self, key: str) -> None:
        """Always fails permanently (a 4xx from a provider; the message carries a secret to scrub)."""
        _record_run(self, key)
        raise UpstreamRejected("provider said 400 for https://user:pw@api.example/v1 token=sk-abcdefghijkl")

    @app.task(**opts("testing.retryable"))
    def retryable(self, key: str) -> None:
        """Always fails retryably."""
        _record_run(self, key)
        raise UpstreamUnavailable("provider answered 503")

    @app.task(**opts("testing.suicide"))
    def suicide(self, key: str) -> None:
        """SIGKILLs its own worker child on every delivery (a poison message)."""
        _record_run(self, key)
        os.kill(os.getpid(), signal.SIGKILL)

    @app.task(**opts("testing.hang", time_limit=1, soft_time_limit=None))
    def hang(self, key: str) -> None:
        """Outlives its hard time limit (1 s): the parent kills the child."""
        _record_run(self, key)
        time.sleep(30)

    @app.task(**opts("testing.slow"))
    def slow(self, key: str, seconds: float = 5.0) -> str:
        """Works for `seconds` (long enough to kill its worker mid-job), then writes its effect once."""
        _record_run(self, key)
        time.sleep(seconds)
        return "created" if _effect_once(self, key) else "already"

    @app.task(**opts("testing.leased", time_limit=20, soft_time_limit=None))
    def leased(self, key: str, fail_first: int = 0) -> str:
        """Claims job `key`'s run lease like a job-tracking task, fails retryably on its first `fail_first`
        claimed attempts, then writes its effect once and marks the job done."""
        _record_run(self, key)
        self.begin_run(key)
        if self.request.retries < fail_first:
            raise UpstreamUnavailable("provider answered 503")
        self.runtime.store.mark_job(key, "done", result={"ok": True})
        return "created" if _effect_once(self, key) else "already"

    @app.task(**opts("testing.fixable"))
    def fixable(self, key: str) -> str:
        """Fails permanently until `testing/fixed/<key>` exists, then writes its effect once."""
        _record_run(self, key)
        if not (_dir(self, "fixed") / key).exists():
            raise UpstreamRejected("not fixed yet")
        return "created" if _effect_once(self, key) else "already"
