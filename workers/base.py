"""Task base class: declared retries (Celery autoretry) with millisecond backoff, job-state upkeep, the guard.

`task_options(app, kind)` turns a `coachup.jobs.JobKind` into the `@app.task(...)` options, so a task
module only adds what is its own (time limits, extra autoretry errors).
"""

from __future__ import annotations

import logging
import time

from celery import Task
from celery.exceptions import TimeLimitExceeded

from coachup.errors import PermanentError, RetryableError
from coachup.jobs import JobKind, job_kind
from coachup.redaction import scrub
from coachup.retry import backoff_ms

from . import guard, run_lease
from .headers import carried_headers, request_headers
from .store_outage import STORE_ERRORS, as_retryable

__all__ = ["CoachupTask", "request_headers", "task_options"]

log = logging.getLogger(__name__)


def task_options(app, kind: JobKind | str, **extra) -> dict:
    """`@app.task` options for a job kind: name, retries, job tracking and dead-lettering from the registry."""
    kind = job_kind(kind) if isinstance(kind, str) else kind
    retries = getattr(app.coachup.settings, kind.max_retries) if isinstance(kind.max_retries, str) else kind.max_retries
    options = {
        "bind": True,
        "base": CoachupTask,
        "name": kind.task,
        "shared": False,
        "max_retries": retries,
        "tracks_job": kind.tracks_job,
        "dead_letter": kind.dead_letter,
        # the scheduler's periodic sweeps (every COACHUP_IDLE_SWEEP_S) send no task events, so Flower's task
        # list shows jobs, not a sweep every few seconds; their liveness is coachup_scheduler_last_sweep_timestamp_seconds
        # (docs/runbooks/liveness.md); their failures are still logged (task_failure)
        "send_events": kind.schedule is None,
    }
    return {**options, **extra}


class CoachupTask(Task):
    """Retries retryable errors with exponential backoff (ms); permanent errors fail at once.

    `tracks_job = True` tasks keep the store's job row (id = task id) in step with their state.
    """

    autoretry_for = (RetryableError, *STORE_ERRORS)
    dont_autoretry_for = (PermanentError,)
    retry_backoff = False  # the countdown comes from `retry()` below, in milliseconds
    max_retries = 3
    tracks_job = False
    dead_letter = True  # from the registry: False for the periodic sweep and the letter recorder

    @property
    def runtime(self):
        return self.app.coachup

    def __call__(self, *args, **kwargs):
        with run_lease.running():  # the run lease `begin_run` takes is released however the call ends
            if self.request.called_directly:  # a plain function call: Celery's own bookkeeping
                return super().__call__(*args, **kwargs)
            return guard.guarded_run(self, args, kwargs)  # a worker (or apply()): the failure table

    def begin_run(self, job_id: str) -> None:
        """Right before the job's provider work: claim its run lease (`workers/run_lease.py`), marking it
        `running`; a second copy of the message ends here (deferred while the lease is live, a no-op once done)."""
        run_lease.begin_run(self, job_id)

    def retry(
        self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None, max_retries=None, **options
    ):
        if countdown is None and eta is None:
            s = self.runtime.settings
            countdown = backoff_ms(self.request.retries, s.backoff_base_ms, s.backoff_max_ms) / 1000.0
        if options.get("headers") is None and not self.request.called_directly:
            headers = carried_headers(self.request)  # keep request id, trace and first failure time
            headers.setdefault("firstFailureAtMs", int(time.time() * 1000))
            options["headers"] = headers
        exc = as_retryable(exc)
        options = {**self.runtime.broker.retry_options(self.request), **options}
        held = run_lease.held()
        if held is not None:
            held.release()  # before the retry is published: its delivery must find the lease free
        return super().retry(
            args=args,
            kwargs=kwargs,
            exc=exc,
            throw=throw,
            eta=eta,
            countdown=countdown,
            max_retries=max_retries,
            **options,
        )

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        if self.tracks_job:
            self._mark(task_id, "queued", exc)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if self.tracks_job:
            marked = self._mark(task_id, "failed", exc)
            guard.park_if_stranded(self, exc, task_id, args, kwargs, marked=marked)
        if isinstance(exc, TimeLimitExceeded) and self.request.called_directly:
            # the parent killed the child: no child code ran the guard, so the parent does (before the ack)
            try:
                guard.on_hard_time_limit(self, exc, task_id, args, kwargs)
            except Exception:
                log.error(
                    "dead letter not published after a hard time limit", extra={"event": "deadletter_publish_error"}
                )

    def _mark(self, task_id: str, status: str, exc: BaseException) -> bool:
        safe = as_retryable(exc)
        try:
            self.runtime.store.mark_job(
                task_id,
                status,
                error_type=getattr(safe, "type", type(safe).__name__),
                error_message=scrub(getattr(safe, "message", safe), limit=200),
            )
        except Exception:  # the store may be the thing that failed; the broker keeps the truth
            log.warning("job state update failed", extra={"event": "job_state_error"})
            return False
        return True
