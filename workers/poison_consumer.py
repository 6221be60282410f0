"""Celery's worker consumer, with the messages it cannot run turned into quarantine entries and dead letters.

Celery's own handlers ack such a message with its raw body in a log line (`on_decode_error`) or reject it
with only a log line (`on_unknown_message`, `on_invalid_task`): the job is silently dropped and the body may
carry text that must never be logged. Here the body is quarantined (`workers.quarantine`, raw bytes kept
out of the logs) and, when the message names its task and id, a dead letter records the failure the way
`workers.guard` records any other, so `coachup dlq` shows it. Then the message is acked: it can never run.
On a broker with a native dead-letter queue (SQS) there is no quarantine list and no letter of ours: the
message is rejected instead, so it stays in its queue and the RedrivePolicy moves it, bytes untouched, to the
DLQ after `maxReceiveCount` receives (acking it deleted it: dropped without a word). The log line and the
counter say so all the same. (`celeryconfig` makes this the `worker_consumer`.)
"""

from __future__ import annotations

import logging
import time

from celery.worker.consumer import Consumer

from coachup.deadletters import DeadLetter
from coachup.logs import log_event

from . import metrics_host, quarantine
from .deadletter import _iso_ms, publish_letter

__all__ = ["PoisonAwareConsumer", "CONSUMER"]

CONSUMER = "workers.poison_consumer:PoisonAwareConsumer"
log = logging.getLogger("coachup.worker")


def _letter(message, reason: str, error_type: str) -> DeadLetter | None:
    """The dead letter of a message with a readable header naming its task and id, else None."""
    headers = message.headers if isinstance(message.headers, dict) else {}
    task_id, task = headers.get("id"), headers.get("task")
    if not (isinstance(task_id, str) and isinstance(task, str)):
        return None
    now = _iso_ms(time.time() * 1000)
    return DeadLetter(
        id=f"{task_id}.0",
        task_id=task_id,
        task=task,
        queue=(message.delivery_info or {}).get("routing_key") or "",
        reason=reason,
        error_type=error_type,
        error_message="the message body could not be read; its bytes are in the quarantine",
        attempts=1,
        first_failure_at=now,
        last_failure_at=now,
        args=[],
        kwargs={},
        headers={k: v for k, v in headers.items() if k == "requestId" and isinstance(v, str)},
    )


class PoisonAwareConsumer(Consumer):
    """Celery's `Consumer`; only its four can-never-run handlers differ."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        app = self.app
        quarantine.bind_metrics(lambda: metrics_host.metrics_for(app))

    def _poison(self, message, reason: str, exc: BaseException | None) -> None:
        info = message.delivery_info or {}
        queue = info.get("routing_key") or "unknown"
        body = message.body if isinstance(message.body, (bytes, str)) else repr(message.body)
        broker = self.app.coachup.broker
        native_dlq = broker.native_dlq
        try:
            with broker.quarantine_client(self.app) as client:  # None: the broker's own DLQ keeps it
                quarantine.quarantine(
                    client,
                    queue,
                    reason,
                    body,
                    metrics=quarantine.bound_metrics(),
                    error_type=type(exc).__name__ if exc else "",
                    receive_count=quarantine.receive_count(info.get("sqs_message")) if client is None else None,
                )
            letter = None if native_dlq else _letter(message, reason, type(exc).__name__ if exc else reason)
            if letter is not None:  # the recorder task counts it and logs `task_dead_lettered`
                publish_letter(self.app, letter)
        except Exception as failure:  # never lets a bad message stop the consumer
            log_event(log, "quarantine_error", logging.ERROR, error={"type": type(failure).__name__})
        finally:
            if native_dlq:  # left in its queue and visible again: the RedrivePolicy dead-letters it
                message.reject(requeue=False)
            else:
                message.ack()

    def on_decode_error(self, message, exc):
        self._poison(message, "body_undecodable", exc)

    def on_unknown_message(self, body, message):
        self._poison(message, "unknown_format", None)

    def on_invalid_task(self, body, message, exc):
        self._poison(message, "unknown_format", exc)
