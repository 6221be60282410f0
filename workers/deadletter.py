"""Dead-lettering on Redis and the embedded broker, and the redrive publisher.

`guarded_run` wraps every `CoachupTask` body in the worker child. When the job dies for good (permanent
error, retries exhausted, an unexpected error, or more than `COACHUP_MAX_REDELIVERIES` redeliveries) it
publishes a `deadletter.record` message on the `deadletter` queue, then lets the failure propagate: with
late acks the parent acks the original message only after that, so there is no window where the job
exists nowhere. If the dead letter cannot be published, the job is rejected with requeue instead.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime

from celery.exceptions import Ignore, Reject, Retry

from coachup.deadletters import DeadLetter, safe_headers
from coachup.errors import PermanentError, RetryableError
from coachup.redaction import scrub

from .safe_errors import withhold

__all__ = [
    "dead_letter_source",
    "SourceUnavailable",
    "guarded_run",
    "PoisonMessage",
    "build_letter",
    "publish_letter",
    "redrive_sender",
    "RECORD_TASK",
    "DEADLETTER_QUEUE",
]

RECORD_TASK = "deadletter.record"
DEADLETTER_QUEUE = "deadletter"
_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


class SourceUnavailable(Exception):
    """No dead-letter source exists for the configured broker (yet)."""


def dead_letter_source(settings, store):
    """The `DeadLetterSource` for the configured broker: the one place that chooses it.

    Redis and the embedded broker: the store table fed by `deadletter.record`. SQS: each queue's own DLQ
    (`coachup.sqs.deadletters.SqsDeadLetters`; `store` is not used there).
    """
    if settings.broker_kind == "sqs":
        from coachup.sqs.deadletters import SqsDeadLetters

        return SqsDeadLetters(settings)
    from coachup.store.deadletters import StoreDeadLetters

    return StoreDeadLetters(store)


class PoisonMessage(PermanentError):
    """The broker delivered this job again after its worker died, more often than allowed."""

    type = "redeliveries_exceeded"


def _iso_ms(ms: float | int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def carried_headers(request) -> dict:
    """The safe custom headers of the running task (what a retry or a redrive sends on)."""
    from .base import request_headers

    return safe_headers(request_headers(request))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, PoisonMessage):
        return "redeliveries"
    if isinstance(exc, PermanentError):
        return "permanent"
    if isinstance(exc, RetryableError):
        return "retries_exhausted"
    return "unexpected"


def build_letter(task, exc: BaseException, *, now_ms: int | None = None) -> DeadLetter:
    """The dead letter of the running task dying with `exc` (references only)."""
    req = task.request
    now_ms = now_ms or int(time.time() * 1000)
    headers = carried_headers(req)
    redrives = int(headers.get("redriveCount") or 0)
    delivery = req.delivery_info or {}
    props = getattr(req, "properties", None) or {}
    first = headers.get("firstFailureAtMs") or now_ms
    return DeadLetter(
        id=f"{req.id}.{redrives}",
        task_id=req.id,
        task=task.name,
        queue=delivery.get("routing_key") or task.app.conf.task_default_queue,
        reason=_reason(exc),
        error_type=getattr(exc, "type", type(exc).__name__),
        error_message=scrub(getattr(exc, "message", exc)),
        attempts=(req.retries or 0) + 1,
        first_failure_at=_iso_ms(first),
        last_failure_at=_iso_ms(now_ms),
        worker=req.hostname or "",
        args=list(req.args or []),
        kwargs=dict(req.kwargs or {}),
        headers=headers,
        group_id=props.get("MessageGroupId"),
        redrives=redrives,
    )


def publish_letter(app, letter: DeadLetter) -> None:
    """Put `letter` on the `deadletter` queue (raises when the broker does not take it)."""
    app.send_task(
        RECORD_TASK,
        args=[letter.to_dict()],
        queue=DEADLETTER_QUEUE,
        retry=True,
        retry_policy=_POLICY,
        ignore_result=True,
        headers={k: v for k, v in letter.headers.items() if k == "requestId"},
    )


def _check_redeliveries(task) -> str | None:
    """Raise `PoisonMessage` when this delivery is redelivery number `COACHUP_MAX_REDELIVERIES + 1`.

    Redis marks a requeued message `redelivered`, so only those are counted. kombu's filesystem transport
    drops that flag, so on the embedded broker every delivery is counted (the first one is not a
    redelivery). The count is per job, redrive and retry: a retry is a new message with its own budget.
    """
    req = task.request
    embedded = task.runtime.settings.embedded_broker
    if not embedded and not (req.delivery_info or {}).get("redelivered"):
        return None
    redrives = int(carried_headers(req).get("redriveCount") or 0)
    key = f"{req.id}.{redrives}.{req.retries or 0}"
    count = _counter(task).count(key)
    redeliveries = count - 1 if embedded else count
    limit = task.runtime.settings.max_redeliveries
    if redeliveries > limit:
        raise PoisonMessage(
            f"delivered {redeliveries + 1} times, its worker died each time (limit {limit} redeliveries)"
        )
    return key


def _forget_redeliveries(task, key: str | None) -> None:
    if key is None:
        return
    try:
        _counter(task).forget(key)
    except Exception:  # a stale counter only costs a row (or a file)
        pass


class _StoreCounter:
    """Redis: only redelivered messages are counted (rare), durably, in the store."""

    def __init__(self, store) -> None:
        from coachup.store.deadletters import StoreDeadLetters

        self._letters = StoreDeadLetters(store)

    def count(self, key: str) -> int:
        return self._letters.count_redelivery(key)

    def forget(self, key: str) -> None:
        self._letters.forget_redeliveries(key)


class FileCounter:
    """The embedded broker (one host, one data dir): every delivery is counted, so the count must be cheap.

    One file per key under `folder`; a delivery appends one byte (an O_APPEND write, atomic between the
    host's workers) and the count is the file's size. Two store commits per task made the embedded worker
    three times slower than bare Celery (docs/benchmarks.md). Not fsynced: after a power cut a count may
    restart from zero, which delays, but does not prevent, dead-lettering a poison message.
    """

    def __init__(self, folder) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def count(self, key: str) -> int:
        fd = os.open(self.folder / key, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, b".")
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def forget(self, key: str) -> None:
        try:
            os.unlink(self.folder / key)
        except FileNotFoundError:
            pass


_file_counters: dict = {}


def _counter(task):
    settings = task.runtime.settings
    if settings.embedded_broker:
        folder = settings.data_dir / "redeliveries"
        counter = _file_counters.get(folder)
        if counter is None:  # one per folder and process: its mkdir once, not twice per task
            counter = _file_counters[folder] = FileCounter(folder)
        return counter
    return _StoreCounter(task.runtime.store)


def _settle_redrive(task) -> None:
    """A redriven job that starts is out of the DLQ for good: drop its letter if a crashed redrive left it.

    Redrive sends, then deletes; a redrive killed in between leaves the letter behind. Deleting it here
    means a later redrive cannot send the same job twice once a worker has taken it.
    """
    req = task.request
    redrives = int(carried_headers(req).get("redriveCount") or 0)
    if redrives and not req.retries and task.runtime.settings.broker_kind != "sqs":
        from coachup.store.deadletters import StoreDeadLetters

        StoreDeadLetters(task.runtime.store).remove(f"{req.id}.{redrives - 1}")


def guarded_run(task, args, kwargs):
    """Run the task body; dead-letter the job when it dies for good (worker only, not eager calls).

    Whatever exception leaves here is logged, sent to Flower and stored, so it leaves through `withhold`,
    on every path (the dead letter is built from the same safe exception).
    """
    guarded = not (task.request.is_eager or task.name == RECORD_TASK or not task.dead_letter or _native_dlq(task))
    counted = None
    try:
        if guarded:
            _settle_redrive(task)
            counted = _check_redeliveries(task)
        return task.run(*args, **kwargs)
    except (Retry, Ignore, Reject):
        raise
    except Exception as exc:
        safe = withhold(exc)
        if guarded:
            try:
                publish_letter(task.app, build_letter(task, safe))
            except Exception as publish_exc:  # keep the job: back on its queue, never nowhere
                counted = None  # the requeued message still counts against its budget
                raise Reject(f"dead letter not published ({type(publish_exc).__name__})", requeue=True) from None
        if safe is exc:
            raise
        raise safe from None
    finally:
        _forget_redeliveries(task, counted)


def _native_dlq(task) -> bool:
    """On SQS the queue's own RedrivePolicy dead-letters (the failed message is left undeleted); publishing
    a letter here as well would put one job in two dead-letter queues."""
    return task.runtime.settings.broker_kind == "sqs"


def dead_letter_hard_timeout(task, exc, task_id: str, args, kwargs) -> None:
    """Dead-letter a job whose child the parent killed at the hard time limit (runs in the parent, before
    the ack). The parent has no message headers here, so this letter carries task, id and arguments only."""
    if _native_dlq(task):
        return
    if task.name == RECORD_TASK:
        # the store hung while recording a letter: put the same letter back (its insert is idempotent)
        publish_letter(task.app, DeadLetter.from_dict(args[0]))
        return
    now_ms = int(time.time() * 1000)
    route = task.app.amqp.router.route({}, task.name, args, kwargs) or {}
    queue = getattr(route.get("queue"), "name", None) or task.app.conf.task_default_queue
    letter = DeadLetter(
        id=f"{task_id}.0",
        task_id=task_id,
        task=task.name,
        queue=queue,
        reason="time_limit",
        error_type=type(exc).__name__,
        error_message=scrub(exc),
        attempts=1,
        first_failure_at=_iso_ms(now_ms),
        last_failure_at=_iso_ms(now_ms),
        args=list(args or []),
        kwargs=dict(kwargs or {}),
    )
    publish_letter(task.app, letter)


def redrive_sender(app):
    """`send(letter)` for `coachup.redrive.redrive`: the original task, id and queue, `redriveCount` + 1."""

    def send(letter: DeadLetter) -> None:
        headers = {**letter.headers, "redriveCount": letter.redrives + 1}
        headers.pop("firstFailureAtMs", None)
        headers["enqueuedAtMs"] = int(time.time() * 1000)
        options = {}
        if letter.group_id:  # FIFO: same group, fresh dedup id (the old one may still be in the dedup window)
            options = {"MessageGroupId": letter.group_id, "MessageDeduplicationId": uuid.uuid4().hex}
        app.send_task(
            letter.task,
            args=letter.args,
            kwargs=letter.kwargs,
            task_id=letter.task_id,
            queue=letter.queue,
            headers=headers,
            retry=True,
            retry_policy=_POLICY,
            ignore_result=True,
            **options,
        )

    return send
