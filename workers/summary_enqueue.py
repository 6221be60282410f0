"""Queue a session's summary refresh when an ingested turn completes a window of `SUMMARY_WINDOW_N` turns.

Called once by `POST /messages/ingest` after the turn is stored. It never fails the ingest: the turn is
already stored, and a window whose job could not be written is caught up by the next window's job (it
summarises every turn since the last version).

The window claim (`summary_windows`, primary key session + window) makes the job unique per window however
many API processes store turns of one session at once. The claim and the job row (unpublished) are one
transaction (`SummaryStore.claim_window_with_job`): a window is never claimed without its job, and the outbox
relay sends the job (a broker outage only delays it).
"""

from __future__ import annotations

import logging
import uuid

from coachup.context import RequestContext
from coachup.jobs import job_kind
from coachup.logs import log_event
from coachup.redaction import Hasher
from coachup.store import Store
from coachup.store.summaries import SummaryStore

from .relay import notify

__all__ = ["SUMMARY_KIND", "SUMMARY_TASK", "enqueue_summary_if_due"]

SUMMARY_KIND = "summary"
SUMMARY_TASK = job_kind(SUMMARY_KIND).task
log = logging.getLogger("coachup.api")


def enqueue_summary_if_due(
    app,
    store: Store,
    hasher: Hasher,
    *,
    session_id: str,
    deduped: bool,
    ctx: RequestContext,
    session_turns: int | None = None,
) -> str | None:
    """The job id when this turn completed a window and its refresh was queued, else None. Never raises.

    `session_turns`: the session's stored turns when the ingest knows it (a session it created), saving the count."""
    if deduped:  # a resent turn adds nothing
        return None
    try:
        return _enqueue(app, store, hasher, session_id, ctx, session_turns)
    except Exception as exc:  # the turn is stored; a summary is never worth failing the ingest for
        log_event(log, "summary_enqueue_failed", logging.ERROR, reason=type(exc).__name__)
    return None


def _enqueue(
    app, store: Store, hasher: Hasher, session_id: str, ctx: RequestContext, session_turns: int | None
) -> str | None:
    window_n = app.coachup.settings.summary_window_n
    sums = SummaryStore(store)
    count = session_turns if session_turns is not None else sums.turn_count(session_id)
    if count == 0 or count % window_n:
        return None
    window = count // window_n
    job_id = str(uuid.uuid4())
    # the claim and the job row: one commit (a failure leaves neither, and the next turn's count retries nothing:
    # the next window's job catches up)
    if not sums.claim_window_with_job(
        session_id,
        window,
        job_id,
        request_id=ctx.requestId,
        params={"window": window, "throughTurn": count},
        context=ctx.to_headers(),
    ):
        return None  # another request queued this window already
    notify(app, store, hasher, [job_id])
    return job_id
