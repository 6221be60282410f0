"""Find jobs whose message the broker lost after taking it, and publish them again (kinds with `requeue=True`).

The job row is the ledger: a job is `queued` from the moment its row is written until a worker starts it.
A row never published (`published_at` NULL) is the outbox relay's (`workers.relay`), never this sweep's: the
relay publishes it within milliseconds (the API's thread) or one scheduler tick (a dead API process's rows).
What is left for this sweep is a message the broker took and then lost: kombu's Redis transport pops a
message (BRPOP) and only then records it in its `unacked` hash, so a Redis restart (or a consumer killed) in
that instant drops it. Nothing in the broker would ever bring such a job back.

The scheduler's sweep calls `requeue_lost_jobs`. A job counts as lost only when it was published and has
sat `queued` and untouched for `COACHUP_REQUEUE_AFTER_S` since, *and* the broker's `requeue_view` of its
queue shows it cannot still hold its message (Redis: not unacked and queued before the oldest waiting message; SQS: the queue is
empty, nothing visible, delayed or in flight; see `workers/brokers/`).

A job is claimed (its `updated_at` bumped on the condition that it is still `queued` and unchanged) before it
is published again, so two sweepers cannot both publish it; and should a stray copy of a message appear
anyway, every requeued kind is idempotent (`coachup.jobs`: its `idempotency`), so a second run writes nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from coachup.context import RequestContext, new_request_id
from coachup.jobs import JobKind, JobRef, requeued_kinds

from .publish import BrokerUnavailable, job_message, publish
from .signals import job_requeued

__all__ = ["requeue_lost_jobs", "republish"]


def requeue_lost_jobs(app, store, hasher, *, now: datetime | None = None, limit: int = 200) -> int:
    """Publish again every job of a requeued kind the broker lost; the number published."""
    published = 0
    for kind in requeued_kinds():
        count, broker_down = _requeue_kind(app, store, hasher, kind, now=now, limit=limit)
        published += count
        if broker_down:
            break  # the rows stay queued; the next sweep finds them again
    return published


def _requeue_kind(app, store, hasher, kind: JobKind, *, now: datetime | None, limit: int) -> tuple[int, bool]:
    """(jobs of `kind` published again, whether the broker refused a publish)."""
    settings = app.coachup.settings
    now = now or datetime.now(UTC)
    candidates = store.queued_jobs_idle_since(kind.name, now - timedelta(seconds=settings.requeue_after_s), limit=limit)
    if not candidates:
        return 0, False
    # read the broker after the rows: a job popped meanwhile is in `unacked` or already `running`
    view = app.coachup.broker.requeue_view(app, kind.queue)
    published = 0
    for job in candidates:
        if view.may_hold(job["id"], job["updatedAt"]) or not store.claim_requeue(job["id"], job["seen"]):
            continue
        try:
            republish(app, hasher, kind, job, now=now)
        except BrokerUnavailable:
            return published, True
        published += 1
    return published, False


def republish(app, hasher, kind: JobKind, job: dict, *, now: datetime, reason: str = "message_missing") -> None:
    """Publish claimed job `job` (a `queued_jobs_idle_since` row) again and say so (`job_requeued`)."""
    # the first message's request id; a fresh FIFO dedup id (SQS drops a copy within 5 minutes)
    ctx = RequestContext(requestId=job["requestId"] or new_request_id())
    ref = JobRef(job["sessionId"], job["groupId"], job["params"] or {})
    headers, options = job_message(app, hasher, kind, ctx, ref, attempt=f"q{int(time.time())}")
    publish(app, kind.task, task_id=job["id"], args=[job["id"]], headers=headers, **options)
    job_requeued.send(
        sender=app,
        kind=kind.name,
        queue=kind.queue,
        headers=headers,
        idle_s=round((now - job["updatedAt"]).total_seconds(), 1),
        reason=reason,
    )
