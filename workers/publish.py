"""Sending one job's message: the one call every publisher (the outbox relay, the requeue sweep) goes through.

The message of every kind is built the same way: task and queue from `coachup.jobs`, headers by the kind's
`headers` function, broker options (SQS FIFO group and dedup id) by the chosen broker.
"""

from __future__ import annotations

import socket

from kombu.exceptions import KombuError, OperationalError

from coachup.context import RequestContext
from coachup.jobs import JobKind, JobRef
from coachup.redaction import Hasher

__all__ = ["BrokerUnavailable", "PUBLISH_ERRORS", "publish", "job_message"]

PUBLISH_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    KombuError,
    ConnectionError,
    OSError,
    TimeoutError,
    socket.timeout,
)
try:  # redis-py's errors do not all subclass OSError
    import redis.exceptions as _redis_exc

    PUBLISH_ERRORS += (_redis_exc.ConnectionError, _redis_exc.TimeoutError)
except ImportError:  # pragma: no cover - redis is a core dependency
    pass
try:  # SQS: botocore's errors (endpoint unreachable, access denied, queue missing) are not OSErrors either
    import botocore.exceptions as _boto_exc

    PUBLISH_ERRORS += (_boto_exc.BotoCoreError, _boto_exc.ClientError)
except ImportError:  # boto3 comes with the `sqs` extra
    pass

# One quick retry covers a dropped pooled connection; a broker that is really down fails the publish fast (the
# outbox relay retries it later; no request ever waits on this).
_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


class BrokerUnavailable(Exception):
    """The broker did not accept the message."""


def publish(app, task_name: str, *, task_id: str, args: list, headers: dict, **options) -> None:
    """Send `task_name` by name (routing decides the queue); raise `BrokerUnavailable` on failure. Every
    publish's `enqueuedAtMs` header is stamped by the `before_task_publish` receiver (`workers.observers`)."""
    try:
        # ignore_result: job state lives in the store; subscribing to the result backend here would
        # make a publish wait on a second server (Redis pub/sub retries for 20 s when it is down)
        app.send_task(
            task_name,
            args=args,
            task_id=task_id,
            headers=headers,
            retry=True,
            retry_policy=_RETRY_POLICY,
            ignore_result=options.pop("ignore_result", True),
            **options,
        )
    except PUBLISH_ERRORS as exc:
        raise BrokerUnavailable(type(exc).__name__) from exc


def job_message(app, hasher: Hasher, kind: JobKind, ctx: RequestContext, job: JobRef, *, attempt: str = "") -> tuple:
    """(headers, broker options) of one job's message; `attempt` marks a republished copy (requeue)."""
    return kind.headers(ctx, hasher, job), app.coachup.broker.publish_options(kind, hasher, job, attempt=attempt)
