"""What happens to a failure: the worker layer's one decision table. The code below follows it row by row.

Every `CoachupTask` body runs inside `guarded_run` (worker child); the parent handles a hard time limit
(`on_hard_time_limit`); `CoachupTask.on_failure` asks `park_if_stranded` last. First matching row wins.

| #  | situation                                                        | decision                                               | code                 |
|----|------------------------------------------------------------------|--------------------------------------------------------|----------------------|
| 1  | eager call (`apply()`), or the job kind has `dead_letter=False`  | run bare: Celery's own handling, no letter             | `guarded`            |
|    | (the periodic sweep; the letter recorder, which retries for ever)|                                                        |                      |
| 2  | the broker dead-letters natively (SQS RedrivePolicy)             | run bare: the failed message stays in its queue; SQS   | `guarded`            |
|    |                                                                  | moves it to the DLQ after maxReceiveCount receives     |                      |
| 3  | first run of a redriven job                                      | settle: drop the letter a crashed redrive left behind  | `_settle_redrive`    |
| 4  | redelivered after its worker died, more than                     | `PoisonMessage`, then row 7: letter `redeliveries`     | `_check_redeliveries`|
|    | COACHUP_MAX_REDELIVERIES times (a poison message)                |                                                        |                      |
| 5  | Retry, Ignore or Reject raised                                   | pass through: Celery retries, drops or requeues        | `guarded_run`        |
| 6  | RetryableError (a store outage included) with retries left       | retry after a millisecond backoff; never reaches here  | `CoachupTask.retry`  |
|    |                                                                  | (Celery's autoretry raises Retry)                      |                      |
| 7  | PermanentError (PoisonMessage and UnexpectedError included)      | dead letter `permanent` / `redeliveries` / `unexpected`| `reason`             |
| 8  | RetryableError with retries exhausted (StoreUnavailable too)     | dead letter `retries_exhausted`                        | `reason`             |
| 9  | the letter cannot be published and is not in the ledger          | Reject(requeue=True): the job goes back on its queue   | `guarded_run`        |
|    | (the ledger has it: the job fails, the sweep publishes it later) |                                                        |                      |
| 10 | hard time limit: the parent killed the child                     | rows 1-2 first; else the parent publishes `time_limit` | `on_hard_time_limit` |
| 11 | the letter recorder itself killed at its hard time limit         | the parent publishes the same letter again             | `on_hard_time_limit` |
| 12 | no letter (row 1), its job row cannot say `failed`, store down   | park: publish the job again after the backoff cap      | `park_if_stranded`   |

Every letter of rows 7, 8 and 10 is written to the store's ledger (a pending marker, `ledger_letter`) before
it is published and before the job's message is acked: a record message the broker loses afterwards (kombu
pops before it records a message as unacked) is published again by the scheduler's sweep
(`workers.deadletter.resend_lost_letters`), so a dead letter is never lost with its message.

Whatever exception leaves `guarded_run` has been through `safe_errors.withhold` (its text can be shown
anywhere); the letter is built from that same safe exception.
"""

from __future__ import annotations

import logging

from celery.exceptions import Ignore, Reject, Retry

from coachup.errors import PermanentError, RetryableError

from .deadletter import RECORD_TASK, build_letter, ledger_letter, publish_letter, timeout_letter
from .headers import redrive_count
from .safe_errors import UnexpectedError, withhold
from .store_outage import STORE_ERRORS, StoreUnavailable, park

__all__ = ["PoisonMessage", "guarded", "guarded_run", "reason", "on_hard_time_limit", "park_if_stranded"]

log = logging.getLogger("coachup.worker")


class PoisonMessage(PermanentError):
    """The broker delivered this job again after its worker died, more often than allowed."""

    type = "redeliveries_exceeded"


def guarded(task) -> bool:
    """Rows 1-2: does a failure of this run become a dead letter published by us?"""
    return not (task.request.is_eager or not task.dead_letter or task.runtime.broker.native_dlq)


def reason(exc: BaseException) -> str:
    """Rows 7-8: the dead letter's `reason` for a (safe) exception."""
    if isinstance(exc, PoisonMessage):
        return "redeliveries"
    if isinstance(exc, UnexpectedError):
        return "unexpected"
    if isinstance(exc, PermanentError):
        return "permanent"
    if isinstance(exc, RetryableError):
        return "retries_exhausted"
    return "unexpected"  # a time limit raised in the child, or anything `withhold` let through


def guarded_run(task, args, kwargs):
    """Run the task body; dead-letter the job when it dies for good (see the table)."""
    if not guarded(task):
        return _bare(task, args, kwargs)
    counted = None
    try:
        _settle_redrive(task)
        counted = _check_redeliveries(task)
        return task.run(*args, **kwargs)
    except (Retry, Ignore, Reject):
        raise
    except Exception as exc:
        safe = withhold(exc)
        letter = build_letter(task, safe, reason(safe))
        ledgered = ledger_letter(task.runtime, letter)  # in the store before the publish and the ack
        try:
            publish_letter(task.app, letter, ledgered=ledgered)
        except Exception as publish_exc:
            if not ledgered:  # keep the job: back on its queue, never nowhere
                counted = None  # the requeued message still counts against its budget
                raise Reject(f"dead letter not published ({type(publish_exc).__name__})", requeue=True) from None
            # the ledger holds the letter: the job fails as it would have, the sweep publishes the letter
        if safe is exc:
            raise
        raise safe from None
    finally:
        _forget_redeliveries(task, counted)


def _bare(task, args, kwargs):
    try:
        return task.run(*args, **kwargs)
    except (Retry, Ignore, Reject):
        raise
    except Exception as exc:
        safe = withhold(exc)
        if safe is exc:
            raise
        raise safe from None


def _letters(task):
    # rows 3-4 run only when row 2 did not match: the broker keeps its dead letters in the store
    from coachup.store.deadletters import StoreDeadLetters

    return StoreDeadLetters(task.runtime.store)


def _settle_redrive(task) -> None:
    """Row 3: a redriven job that starts is out of the DLQ for good; drop its letter if a killed redrive
    (send, then delete) left it, so a later redrive cannot send the same job twice."""
    redrives = redrive_count(task.request)
    if redrives and not task.request.retries:
        _letters(task).remove(f"{task.request.id}.{redrives - 1}")


def _redelivery_key(task) -> str | None:
    req = task.request
    if not (req.delivery_info or {}).get("redelivered"):
        return None  # only messages requeued after their worker died are counted (rare), durably, in the store
    # per job, redrive and retry: a retry is a new message with its own budget
    return f"{req.id}.{redrive_count(req)}.{req.retries or 0}"


def _check_redeliveries(task) -> str | None:
    """Row 4: raise `PoisonMessage` on redelivery number `COACHUP_MAX_REDELIVERIES + 1`."""
    key = _redelivery_key(task)
    if key is None:
        return None
    count = _letters(task).count_redelivery(key)
    limit = task.runtime.settings.max_redeliveries
    if count > limit:
        raise PoisonMessage(f"delivered {count + 1} times, its worker died each time (limit {limit} redeliveries)")
    return key


def _forget_redeliveries(task, key: str | None) -> None:
    if key is None:
        return
    try:
        _letters(task).forget_redeliveries(key)
    except Exception:  # a stale counter only costs a row
        pass


def on_hard_time_limit(task, exc: BaseException, task_id: str, args, kwargs) -> None:
    """Rows 10-11, in the parent, before the ack (no child code ran the guard)."""
    if task.name == RECORD_TASK:  # the store hung while recording: put the same letter back (idempotent insert)
        from coachup.deadletters import DeadLetter

        publish_letter(task.app, DeadLetter.from_dict(args[0]), ledgered=bool((kwargs or {}).get("ledgered")))
        return
    if not task.dead_letter or task.runtime.broker.native_dlq:
        return
    letter = timeout_letter(task, exc, task_id, args, kwargs)
    publish_letter(task.app, letter, ledgered=ledger_letter(task.runtime, letter))


def park_if_stranded(task, exc: BaseException, task_id: str, args, kwargs, *, marked: bool) -> bool:
    """Row 12: a job without a letter whose row could not be marked `failed` because the store is down is
    published again after the backoff cap instead of being dropped by the ack."""
    if marked or task.dead_letter or not isinstance(exc, (StoreUnavailable, *STORE_ERRORS)):
        return False
    return park(task, task_id, args, kwargs)
