"""Publishing jobs: the one place the API, the scheduler and the requeue sweep hand work to the broker.

A job row is written first, then the message is published with a bounded retry; when the broker cannot
take it the row is removed again, so no row ever says `queued` for a message that does not exist. The
message of every kind is built the same way: task and queue from `coachup.jobs`, headers by the kind's
`headers` function, broker options (SQS FIFO group and dedup id) by the chosen broker.
"""

from __future__ import annotations

import socket
import time

from kombu.exceptions import KombuError, OperationalError

from coachup.context import RequestContext
from coachup.jobs import JobKind, JobRef, job_kind
from coachup.redaction import Hasher
from coachup.store import Store

__all__ = [
    "BrokerUnavailable",
    "PUBLISH_ERRORS",
    "publish",
    "job_message",
    "publish_job",
    "enqueue",
    "enqueue_assessment",
    "publish_assessment",
    "enqueue_speech",
    "ASSESS_TASK",
]

ASSESS_TASK = job_kind("assessment").task
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


def job_message(app, hasher: Hasher, kind: JobKind, ctx: RequestContext, job: JobRef, *, attempt: str = "") -> tuple:
    """(headers, broker options) of one job's message; `attempt` marks a republished copy (requeue)."""
    return kind.headers(ctx, hasher, job), app.coachup.broker.publish_options(kind, hasher, job, attempt=attempt)


def publish_job(
    app, store: Store, hasher: Hasher, kind: JobKind, *, job_id: str, ctx: RequestContext, job: JobRef
) -> None:
    """Publish the message of a job whose row is written; remove the row if the broker refuses."""
    headers, options = job_message(app, hasher, kind, ctx, job)
    try:
        publish(app, kind.task, task_id=job_id, args=[job_id], headers=headers, **options)
    except BrokerUnavailable:
        store.delete_job(job_id)
        raise


def enqueue(
    app,
    store: Store,
    hasher: Hasher,
    kind: str,
    *,
    ctx: RequestContext,
    session_id: str | None = None,
    group_id: str | None = None,
    params: dict | None = None,
    owner: str | None = None,
) -> str:
    """Queue one job of `kind` (a row, then its message); returns its id (also the Celery task id).

    `owner`: who the job acts for; None means its session's owner (`Store.create_job`)."""
    spec = job_kind(kind)
    params = params or {}
    job_id = store.create_job(
        kind, session_id=session_id, group_id=group_id, request_id=ctx.requestId, params=params, owner=owner
    )
    publish_job(app, store, hasher, spec, job_id=job_id, ctx=ctx, job=JobRef(session_id, group_id, params))
    return job_id


def enqueue_assessment(
    app,
    store: Store,
    hasher: Hasher,
    *,
    session_id: str,
    group_id: str,
    ctx: RequestContext,
    tracked_skills: list[str] | None = None,
    only_if_none: bool = False,
) -> tuple[str, bool]:
    """Queue the assessment of one group once. Returns (task id, newly queued?).

    A group that has a queued, running or done assessment answers with that job. Two callers at once (two
    schedulers, concurrent requests) meet at the store's unique index: one writes the row and publishes, the
    other gets the same job back (`Store.create_assessment_job`). `only_if_none`: the sweep's rule, queue only
    a group with no assessment job at all (a failed one belongs to the dead-letter path).
    """
    existing = store.active_assessment_job(session_id, group_id)
    if existing is not None:
        return existing["taskId"], False
    params = {"trackedSkills": tracked_skills or []}
    job_id, created = store.create_assessment_job(
        session_id, group_id, request_id=ctx.requestId, params=params, only_if_none=only_if_none
    )
    if created:
        kind = job_kind("assessment")
        publish_job(app, store, hasher, kind, job_id=job_id, ctx=ctx, job=JobRef(session_id, group_id, params))
    return job_id, created


def publish_assessment(
    app, store: Store, hasher: Hasher, *, job_id: str, session_id: str, group_id: str, ctx: RequestContext
) -> None:
    """Publish the message of an assessment job whose row is written (a retried request)."""
    kind = job_kind("assessment")
    publish_job(app, store, hasher, kind, job_id=job_id, ctx=ctx, job=JobRef(session_id, group_id))


def enqueue_speech(
    app,
    store: Store,
    hasher: Hasher,
    kind: str,
    *,
    params: dict,
    ctx: RequestContext,
    session_id: str | None = None,
    group_id: str | None = None,
    owner: str | None = None,
) -> str:
    """Queue one `kind` job (`stt` | `tts`) for `owner` (the caller); returns its id."""
    return enqueue(
        app, store, hasher, kind, ctx=ctx, session_id=session_id, group_id=group_id, params=params, owner=owner
    )
