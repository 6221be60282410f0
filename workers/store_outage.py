"""The store (database) unreachable inside a task: retry it like any transient failure, never lose the job.

SQLAlchemy's connection errors become `StoreUnavailable` (a `RetryableError` with a clean message: the
driver's text can carry SQL parameters, i.e. session ids, which must not reach the result backend or a log).
When the retry budget runs out while the store is still down, the job row cannot even be marked `failed`;
jobs with a dead-letter path become dead letters (`workers/guard.py`, row 8); for a task without one, `park`
publishes the same task again (same id, same headers) after the backoff cap instead of letting the ack drop
it, so the job finishes once the store returns.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import InterfaceError, OperationalError

from coachup.errors import RetryableError
from coachup.logs import log_event

from .headers import request_headers

__all__ = ["STORE_ERRORS", "StoreUnavailable", "as_retryable", "park"]

log = logging.getLogger("coachup.worker")
STORE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)


class StoreUnavailable(RetryableError):
    """The store (database) could not be reached."""

    type = "store_unavailable"


def as_retryable(exc: BaseException | None) -> BaseException | None:
    """`StoreUnavailable` for a store connection error, `exc` unchanged otherwise."""
    if isinstance(exc, STORE_ERRORS):
        return StoreUnavailable("the store is unreachable")
    return exc


def park(task, task_id: str, args, kwargs) -> bool:
    """Publish `task` again (same id and headers) after the backoff cap; False when that failed too."""
    countdown = task.runtime.settings.backoff_max_ms / 1000.0
    try:
        task.apply_async(
            args=args,
            kwargs=kwargs,
            task_id=task_id,
            countdown=countdown,
            headers=request_headers(task.request),
            retries=0,
        )
    except Exception:  # the broker is down too: the worker's log line is all that is left to say
        log_event(log, "job_park_failed", logging.ERROR, taskId=task_id, task=task.name)
        return False
    log_event(
        log,
        "job_parked",
        logging.WARNING,
        taskId=task_id,
        task=task.name,
        countdownS=countdown,
        reason="store_unavailable",
    )
    return True
