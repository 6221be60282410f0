"""Queueing jobs: the API, the scheduler and the workers write a job row; the outbox relay publishes it.

A job row is committed unpublished (`coachup.store.outbox`: the row is its own outbox record) with the
request context its message will carry; `notify` then wakes the API process's relay thread, or, in a
worker, publishes inline (`workers.relay`). Nothing here waits on the broker in a request: a committed
row is a job that will run, whatever the broker is doing, and the caller answers 202 at once.
"""

from __future__ import annotations

from coachup.context import RequestContext
from coachup.jobs import job_kind
from coachup.redaction import Hasher
from coachup.store import Store

from .publish import PUBLISH_ERRORS, BrokerUnavailable, job_message, publish
from .relay import notify

__all__ = [
    "BrokerUnavailable",
    "PUBLISH_ERRORS",
    "publish",
    "job_message",
    "enqueue",
    "enqueue_assessment",
    "enqueue_speech",
    "notify",
    "ASSESS_TASK",
]

ASSESS_TASK = job_kind("assessment").task


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
    """Queue one job of `kind` (its unpublished row, then the relay is told); returns its id (also the task id).

    `owner`: who the job acts for; None means its session's owner (`Store.create_job`)."""
    job_kind(kind)  # an unknown kind fails here, before a row exists
    job_id = store.create_job(
        kind,
        session_id=session_id,
        group_id=group_id,
        request_id=ctx.requestId,
        params=params or {},
        owner=owner,
        context=ctx.to_headers(),
    )
    notify(app, store, hasher, [job_id])
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
    schedulers, concurrent requests) meet at the store's unique index: one writes the row (the relay publishes
    it), the other gets the same job back (`Store.create_assessment_job`). `only_if_none`: the sweep's rule, queue only
    a group with no assessment job at all (a failed one belongs to the dead-letter path).
    """
    existing = store.active_assessment_job(session_id, group_id)
    if existing is not None:
        return existing["taskId"], False
    params = {"trackedSkills": tracked_skills or []}
    job_id, created = store.create_assessment_job(
        session_id,
        group_id,
        request_id=ctx.requestId,
        params=params,
        only_if_none=only_if_none,
        context=ctx.to_headers(),
    )
    if created:
        notify(app, store, hasher, [job_id])
    return job_id, created


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
