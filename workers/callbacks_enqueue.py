"""Queueing the finalize callback of a stored summary (job kind `finalize`, queue `callbacks`).

Called by the assessment task after it stored (or found) the summary. One job per group: the job row's
unique index (`uq_job_finalize_group`) turns a second enqueue (a redelivered assessment) into a no-op.
Unlike the API's enqueues, a publish the broker refuses keeps the row `queued`: the caller is a worker
that must not fail for it, and the scheduler's sweep (`workers.requeue`) publishes the job again later.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from coachup.context import RequestContext
from coachup.jobs import JobRef, job_kind
from coachup.redaction import Hasher
from coachup.store import Store

from .enqueue import job_message, publish
from .tasks.callbacks import FINALIZE_KIND

__all__ = ["enqueue_finalize"]


def enqueue_finalize(
    app, store: Store, hasher: Hasher, *, session_id: str, group_id: str, ctx: RequestContext
) -> tuple[str | None, bool]:
    """(job id, newly queued?); None when the group's callback job already exists.

    Raises `BrokerUnavailable` when the broker refuses the message (the row stays for the sweep).
    """
    try:
        job_id = store.create_job(FINALIZE_KIND, session_id=session_id, group_id=group_id, request_id=ctx.requestId)
    except IntegrityError:
        return None, False
    kind = job_kind(FINALIZE_KIND)
    headers, options = job_message(app, hasher, kind, ctx, JobRef(session_id, group_id))
    publish(app, kind.task, task_id=job_id, args=[job_id], headers=headers, **options)
    return job_id, True
