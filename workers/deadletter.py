"""Dead letters of the store-backed brokers (Redis, embedded): building, publishing, and the redrive sender.

A letter holds references only (`coachup.deadletters.DeadLetter`). It is first written to the store's ledger
(`ledger_letter`: a pending marker), then published as a `deadletter.record` message on the `deadletter`
queue; that task inserts it into the store and removes the marker. A letter whose message the broker lost
(kombu pops before it records a message as unacked) keeps its marker, and the scheduler's sweep publishes it
again (`resend_lost_letters`). Whether a failure becomes a letter is decided in `workers.guard`, not here.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from coachup.deadletters import DeadLetter
from coachup.logs import log_event
from coachup.redaction import scrub

from .headers import carried_headers
from .metrics_host import metrics_for

__all__ = [
    "build_letter",
    "timeout_letter",
    "ledger_letter",
    "publish_letter",
    "resend_lost_letters",
    "redrive_sender",
    "RECORD_TASK",
    "DEADLETTER_QUEUE",
]

log = logging.getLogger("coachup.worker")

RECORD_TASK = "deadletter.record"
DEADLETTER_QUEUE = "deadletter"
_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def _iso_ms(ms: float | int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_letter(task, exc: BaseException, reason: str, *, now_ms: int | None = None) -> DeadLetter:
    """The dead letter of the running task dying with `exc` for `reason` (references only)."""
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
        reason=reason,
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


def timeout_letter(task, exc: BaseException, task_id: str, args, kwargs) -> DeadLetter:
    """The letter of a job whose child the parent killed at the hard time limit (task, id and arguments only:
    the parent has no message headers at that point)."""
    now_ms = int(time.time() * 1000)
    route = task.app.amqp.router.route({}, task.name, args, kwargs) or {}
    queue = getattr(route.get("queue"), "name", None) or task.app.conf.task_default_queue
    return DeadLetter(
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


def ledger_letter(runtime, letter: DeadLetter) -> bool:
    """Write `letter`'s pending marker to `runtime`'s store before it is published. True when the marker is there
    (written now, or by an earlier try of the same letter); False when the store is down: the letter then
    rides on its message alone, as before the ledger (the record task retries its insert until the store is
    back), and only a broker that loses that message as well loses the letter."""
    from coachup.store.deadletters import StoreDeadLetters

    try:  # `runtime.store` too: a child that never reached the store builds it here, and that can fail
        StoreDeadLetters(runtime.store).ledger(letter)
        return True
    except Exception:  # the store is down or busy: the message still carries the letter
        log_event(log, "dead_letter_not_ledgered", logging.WARNING, deadLetterId=letter.id, task=letter.task)
        return False


def publish_letter(app, letter: DeadLetter, *, ledgered: bool = False) -> None:
    """Put `letter` on the `deadletter` queue (raises when the broker does not take it). `ledgered`: its
    marker is in the store, so the record task inserts it only while the marker is there."""
    app.send_task(
        RECORD_TASK,
        args=[letter.to_dict()],
        kwargs={"ledgered": True} if ledgered else {},
        queue=DEADLETTER_QUEUE,
        retry=True,
        retry_policy=_POLICY,
        ignore_result=True,
        headers={k: v for k, v in letter.headers.items() if k == "requestId"},
    )


def resend_lost_letters(app, store, older_than_s: float, *, limit: int = 200) -> int:
    """Publish again every ledgered letter not recorded `older_than_s` after its last publish (the broker lost
    its message, or the record consumer is down); each is claimed first, so two sweeps send it once."""
    from coachup.store.deadletters import StoreDeadLetters

    letters = StoreDeadLetters(store)
    sent = 0
    for letter in letters.unrecorded(older_than_s, limit=limit):
        if not letters.claim_resend(letter.id, older_than_s):
            continue
        publish_letter(app, letter, ledgered=True)
        sent += 1
        metrics_for(app).record_letter_resent(letter.task)
        log_event(
            log,
            "dead_letter_resent",
            logging.WARNING,
            deadLetterId=letter.id,
            taskId=letter.task_id,
            task=letter.task,
            queue=letter.queue,
            reason="record_missing",
        )
    return sent


def redrive_sender(app):
    """`send(letter)` for `coachup.redrive.redrive`: the original task, id and queue, `redriveCount` + 1."""
    broker = app.coachup.broker

    def send(letter: DeadLetter) -> None:
        # `enqueuedAtMs` is stamped by every publish's `before_task_publish` receiver (`workers.observers`)
        headers = {**letter.headers, "redriveCount": letter.redrives + 1}
        headers.pop("firstFailureAtMs", None)
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
            **broker.redrive_options(letter),
        )

    return send
