"""Publishing jobs: the one place the API and the scheduler hand work to the broker.

A job row is written first, then the message is published with a bounded retry; when the broker cannot
take it the row is removed again, so no row ever says `queued` for a message that does not exist.
"""

from __future__ import annotations

import socket
import time

from kombu.exceptions import KombuError, OperationalError

from coachup.context import RequestContext
from coachup.redaction import Hasher
from coachup.store import Store

from .sqs_options import fifo_publish_options

__all__ = [
    "BrokerUnavailable",
    "publish",
    "enqueue_assessment",
    "publish_assessment",
    "assessment_message",
    "ASSESS_TASK",
]

ASSESS_TASK = "assessments.run"
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
except ImportError:  # pragma: no cover - boto3 is a core dependency
    pass

# One quick retry covers a dropped pooled connection; a broker that is really down answers 503 in < 2 s.
_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


class BrokerUnavailable(Exception):
    """The broker did not accept the message."""


def publish(app, task_name: str, *, task_id: str, args: list, headers: dict, **options) -> None:
    """Send `task_name` by name (routing decides the queue); raise `BrokerUnavailable` on failure."""
    headers = {**headers, "enqueuedAtMs": int(time.time() * 1000)}
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


def enqueue_assessment(
    app,
    store: Store,
    hasher: Hasher,
    *,
    session_id: str,
    group_id: str,
    ctx: RequestContext,
    tracked_skills: list[str] | None = None,
) -> tuple[str, bool]:
    """Queue the assessment of one group once. Returns (task id, newly queued?)."""
    existing = store.active_assessment_job(session_id, group_id)
    if existing is not None:
        return existing["taskId"], False
    job_id = store.create_job(
        "assessment",
        session_id=session_id,
        group_id=group_id,
        request_id=ctx.requestId,
        params={"trackedSkills": tracked_skills or []},
    )
    publish_assessment(app, store, hasher, job_id=job_id, session_id=session_id, group_id=group_id, ctx=ctx)
    return job_id, True


def publish_assessment(
    app, store: Store, hasher: Hasher, *, job_id: str, session_id: str, group_id: str, ctx: RequestContext
) -> None:
    """Publish the message of an assessment job whose row is written; remove the row if the broker refuses."""
    headers, fifo = assessment_message(app.coachup.settings, hasher, ctx, session_id, group_id)
    try:
        publish(app, ASSESS_TASK, task_id=job_id, args=[job_id], headers=headers, **fifo)
    except BrokerUnavailable:
        store.delete_job(job_id)
        raise


def assessment_message(
    settings, hasher: Hasher, ctx: RequestContext, session_id: str, group_id: str
) -> tuple[dict, dict]:
    """The headers (request context, hashed session and group) and SQS FIFO options of an assessment message."""
    headers = ctx.with_(sessionIdHash=hasher.session(session_id), groupId=hasher.group(group_id)).to_headers()
    return headers, fifo_publish_options(settings, hasher, session_id, group_id)
