"""Queueing the finalize callback of a stored summary (job kind `finalize`, queue `callbacks`).

Called by the assessment task after it stored (or found) the summary. One job per group: the job row's
unique index (`uq_job_finalize_group`) turns a second enqueue (a redelivered assessment) into a no-op.
The row is written unpublished and published inline after its commit (`workers.relay.notify`); a publish
the broker refuses leaves the row in the outbox for the scheduler's relay pass, so the worker never fails
for it.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from coachup.context import RequestContext
from coachup.redaction import Hasher
from coachup.store import Store

from .relay import notify
from .tasks.callbacks import FINALIZE_KIND

__all__ = ["enqueue_finalize"]


def enqueue_finalize(
    app, store: Store, hasher: Hasher, *, session_id: str, group_id: str, ctx: RequestContext
) -> tuple[str | None, bool]:
    """(job id, newly queued?); None when the group's callback job already exists.

    Never raises for the broker: a refused publish leaves the row for the relay's next pass.
    """
    try:
        job_id = store.create_job(
            FINALIZE_KIND,
            session_id=session_id,
            group_id=group_id,
            request_id=ctx.requestId,
            context=ctx.to_headers(),
        )
    except IntegrityError:
        return None, False
    notify(app, store, hasher, [job_id])
    return job_id, True
