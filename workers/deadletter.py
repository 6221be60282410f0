"""Dead letters of the store-backed brokers (Redis, embedded): building, publishing, and the redrive sender.

A letter holds references only (`coachup.deadletters.DeadLetter`). It is published as a `deadletter.record`
message on the `deadletter` queue; that task inserts it into the store. Whether a failure becomes a letter
is decided in `workers.guard`, not here.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from coachup.deadletters import DeadLetter
from coachup.redaction import scrub

from .headers import carried_headers

__all__ = ["build_letter", "timeout_letter", "publish_letter", "redrive_sender", "RECORD_TASK", "DEADLETTER_QUEUE"]

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


def redrive_sender(app):
    """`send(letter)` for `coachup.redrive.redrive`: the original task, id and queue, `redriveCount` + 1."""
    broker = app.coachup.broker

    def send(letter: DeadLetter) -> None:
        headers = {**letter.headers, "redriveCount": letter.redrives + 1}
        headers.pop("firstFailureAtMs", None)
        headers["enqueuedAtMs"] = int(time.time() * 1000)
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
