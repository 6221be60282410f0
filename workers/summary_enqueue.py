"""Queue a session's summary refresh when an ingested turn completes a window of `SUMMARY_WINDOW_N` turns.

Called once by `POST /messages/ingest` after the turn is stored. It never fails the ingest: the turn is
already stored, and a window whose job could not be queued is caught up by the next window's job (it
summarises every turn since the last version), so a broker hiccup only delays a summary.

The window claim (`summary_windows`, primary key session + window) makes the job unique per window however
many API processes store turns of one session at once.
"""

from __future__ import annotations

import logging

from coachup.context import RequestContext
from coachup.jobs import JobRef, job_kind
from coachup.logs import log_event
from coachup.redaction import Hasher
from coachup.store import Store
from coachup.store.summaries import SummaryStore

from .enqueue import BrokerUnavailable, job_message, publish

__all__ = ["SUMMARY_KIND", "SUMMARY_TASK", "enqueue_summary_if_due"]

SUMMARY_KIND = "summary"
SUMMARY_TASK = job_kind(SUMMARY_KIND).task
log = logging.getLogger("coachup.api")


def enqueue_summary_if_due(
    app, store: Store, hasher: Hasher, *, session_id: str, deduped: bool, ctx: RequestContext
) -> str | None:
    """The job id when this turn completed a window and its refresh was queued, else None. Never raises."""
    if deduped:  # a resent turn adds nothing
        return None
    try:
        return _enqueue(app, store, hasher, session_id, ctx)
    except BrokerUnavailable:
        log_event(log, "summary_enqueue_failed", logging.WARNING, reason="broker_unavailable")
    except Exception as exc:  # the turn is stored; a summary is never worth failing the ingest for
        log_event(log, "summary_enqueue_failed", logging.ERROR, reason=type(exc).__name__)
    return None


def _enqueue(app, store: Store, hasher: Hasher, session_id: str, ctx: RequestContext) -> str | None:
    window_n = app.coachup.settings.summary_window_n
    sums = SummaryStore(store)
    count = sums.turn_count(session_id)
    if count == 0 or count % window_n:
        return None
    window = count // window_n
    job_id = store.create_job(
        SUMMARY_KIND, session_id=session_id, request_id=ctx.requestId, params={"window": window, "throughTurn": count}
    )
    if not sums.claim_window(session_id, window, job_id):
        store.delete_job(job_id)  # another request queued this window already
        return None
    try:
        headers, options = job_message(app, hasher, job_kind(SUMMARY_KIND), ctx, JobRef(session_id))
        publish(app, SUMMARY_TASK, task_id=job_id, args=[job_id], headers=headers, **options)
    except BrokerUnavailable:
        store.delete_job(job_id)
        sums.release_window(session_id, window)
        raise
    return job_id
