"""What leaves a task when it fails: an exception whose text and chain are safe to show anywhere.

A failed task's exception travels far: Celery's trace log, the `task-failed` event (Flower shows its repr and
traceback), the result backend, the job row and the dead letter. Its text and the exceptions chained to it are
anyone's text: a provider's 400 quotes the transcript it refused, a database error carries its SQL parameters.
`withhold` keeps the failure's type and frames and drops the rest:

- a `CoachupError` (deliberate, with a message written by this codebase) and a time limit pass unchanged;
- a store error becomes `StoreUnavailable`, as it does for retries;
- anything else becomes `UnexpectedError`, whose `type` is the original class name and whose message names
  only the class and where it was raised;
- in every case the chain (`__cause__`, `__context__`) is cut, and the original traceback (frames only) kept.
"""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from coachup.errors import CoachupError, PermanentError
from coachup.logs import frame_lines

from .store_outage import STORE_ERRORS, as_retryable

__all__ = ["UnexpectedError", "withhold"]


class UnexpectedError(PermanentError):
    """A failure no code anticipated; its original message is withheld."""


def withhold(exc: BaseException) -> BaseException:
    """`exc`, or a stand-in for it, with nothing in its text or chain that could quote user data."""
    if isinstance(exc, (CoachupError, SoftTimeLimitExceeded, TimeLimitExceeded)):
        safe = exc
    elif isinstance(exc, STORE_ERRORS):
        safe = as_retryable(exc)
    else:
        where = (frame_lines(exc.__traceback__, 1) or ["an unknown place"])[0]
        safe = UnexpectedError(
            f"{type(exc).__name__} at {where} (message withheld: it may quote user data)", type=type(exc).__name__
        )
    if safe is not exc:
        safe = safe.with_traceback(exc.__traceback__)
    safe.__cause__ = None
    safe.__context__ = None
    safe.__suppress_context__ = True
    return safe
