"""Task base class: declared retries (Celery autoretry) with millisecond backoff, and job-state upkeep."""

from __future__ import annotations

import time

from celery import Task
from celery.exceptions import TimeLimitExceeded

from coachup.errors import PermanentError, RetryableError
from coachup.redaction import scrub
from coachup.retry import backoff_ms

from .sqs_options import fifo_retry_options
from .store_outage import STORE_ERRORS, StoreUnavailable, as_retryable, park

__all__ = ["CoachupTask", "request_headers"]


def request_headers(request) -> dict:
    """The custom message headers of the running task (protocol 2 merges them into the request)."""
    from coachup.context import RequestContext

    headers = dict(getattr(request, "headers", None) or {})
    for key in RequestContext.__dataclass_fields__:
        value = getattr(request, key, None)
        if value is not None:
            headers.setdefault(key, value)
    return headers


class CoachupTask(Task):
    """Retries retryable errors with exponential backoff (ms); permanent errors fail at once.

    `tracks_job = True` tasks keep the store's job row (id = task id) in step with their state.
    """

    autoretry_for = (RetryableError, *STORE_ERRORS)
    dont_autoretry_for = (PermanentError,)
    retry_backoff = False  # the countdown comes from `retry()` below, in milliseconds
    max_retries = 3
    tracks_job = False
    dead_letter = True  # False for periodic tasks: the next tick runs them again, a letter is only noise

    @property
    def runtime(self):
        return self.app.coachup

    def __call__(self, *args, **kwargs):
        if self.request.called_directly:  # a plain function call: Celery's own bookkeeping
            return super().__call__(*args, **kwargs)
        from .deadletter import guarded_run  # a worker (or apply()): dead-letter what dies for good

        return guarded_run(self, args, kwargs)

    def retry(
        self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None, max_retries=None, **options
    ):
        if countdown is None and eta is None:
            s = self.runtime.settings
            countdown = backoff_ms(self.request.retries, s.backoff_base_ms, s.backoff_max_ms) / 1000.0
        if options.get("headers") is None and not self.request.called_directly:
            from .deadletter import carried_headers  # keep request id, trace and first failure time

            headers = carried_headers(self.request)
            headers.setdefault("firstFailureAtMs", int(time.time() * 1000))
            options["headers"] = headers
        exc = as_retryable(exc)
        options = {**fifo_retry_options(self), **options}
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
            if not marked and not self.dead_letter and isinstance(exc, (StoreUnavailable, *STORE_ERRORS)):
                # no dead-letter path for this task and the row cannot say `failed`: keep the job alive
                park(self, task_id, args, kwargs)
        if isinstance(exc, TimeLimitExceeded) and self.request.called_directly:
            self._dead_letter_hard_timeout(exc, task_id, args, kwargs)

    def _dead_letter_hard_timeout(self, exc, task_id, args, kwargs) -> None:
        # the parent killed the child: no child code ran the dead-letter path, so the parent does it
        import logging

        from .deadletter import dead_letter_hard_timeout

        try:
            dead_letter_hard_timeout(self, exc, task_id, args, kwargs)
        except Exception:
            logging.getLogger(__name__).error(
                "dead letter not published after a hard time limit", extra={"event": "deadletter_publish_error"}
            )

    def _mark(self, task_id: str, status: str, exc: BaseException) -> bool:
        exc = as_retryable(exc)
        try:
            self.runtime.store.mark_job(
                task_id,
                status,
                error_type=getattr(exc, "type", type(exc).__name__),
                error_message=scrub(getattr(exc, "message", exc), limit=200),
            )
        except Exception:  # the store may be the thing that failed; the broker keeps the truth
            import logging

            logging.getLogger(__name__).warning("job state update failed", extra={"event": "job_state_error"})
            return False
        return True
