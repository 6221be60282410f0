"""`POST /messages/ingest`: store a transcript turn once and decide whether its interaction has ended.

The answer is what the front end reads: `state` (`active` while the interaction goes on, `idle` once it
ended), `groupId`, `turnCount`, `enqueued` (an assessment was queued by this turn) and `deduped`.
"""

from __future__ import annotations

import logging

from flask import Blueprint, g

from coachup.logs import log_event
from coachup.store import GroupIdle
from workers.enqueue import BrokerUnavailable, enqueue_assessment
from workers.summary_enqueue import enqueue_summary_if_due

from ..errors import ApiError
from ..runtime import runtime
from ..session_access import require_session_access
from ..skills_input import tracked_skills_field
from ..validation import json_body, opt_bool, opt_id_field, opt_str, opt_ts, req_id_field

bp = Blueprint("intake", __name__)
log = logging.getLogger("coachup.api")

MAX_TURN_CHARS = 20_000
ROLES = ("user", "assistant", "system")


@bp.post("/messages/ingest")
def ingest_message():
    rt = runtime()
    data = json_body()
    session_id = req_id_field(data, "sessionId")
    message_id = req_id_field(data, "messageId")
    role = opt_str(data, "role", max_len=16, required=True, choices=ROLES)
    content = opt_str(data, "content", max_len=MAX_TURN_CHARS, required=True)
    ts = opt_ts(data, "ts")
    group_id = opt_id_field(data, "groupId")
    end = opt_bool(data, "end")
    tracked = tracked_skills_field(data, rt.store)
    require_session_access(session_id, write=True)  # the first write claims the session; another's: 404

    end_reason = "explicit" if end else ("closing_cue" if rt.closing_cue.is_closing(content, role=role) else None)
    try:
        outcome = rt.store.ingest_turn(
            session_id=session_id,
            message_id=message_id,
            role=role,
            content=content,
            ts=ts,
            group_id=group_id,
            end_reason=end_reason,
            max_turns=rt.settings.interaction_max_turns,
            tracked_skills=tracked,
        )
    except GroupIdle:
        raise ApiError(
            409, "group_idle", "that group's interaction has ended; omit groupId to start a new one"
        ) from None
    g.log_fields.update(
        sessionIdHash=rt.hasher.session(session_id),
        groupId=rt.hasher.group(outcome.group_id),
        turnCount=outcome.turn_count,
        deduped=outcome.deduped,
        state=outcome.state,
    )
    # every SUMMARY_WINDOW_N stored turns: the session's rolling summary job (never fails the ingest)
    enqueue_summary_if_due(rt.celery, rt.store, rt.hasher, session_id=session_id, deduped=outcome.deduped, ctx=g.ctx)

    if outcome.superseded:
        _queue_superseded(rt, session_id, outcome)
    task_id, enqueued = None, False
    if outcome.state == "idle":
        # BrokerUnavailable answers 503; the turn and the idle group stay stored, and the client's retry
        # (deduped) or the scheduler's sweep queues the group once the broker is back
        task_id, enqueued = enqueue_assessment(
            rt.celery,
            rt.store,
            rt.hasher,
            session_id=session_id,
            group_id=outcome.group_id,
            ctx=g.ctx,
            tracked_skills=list(outcome.tracked_skills or []),
        )
    body = {
        "state": outcome.state,
        "groupId": outcome.group_id,
        "turnCount": outcome.turn_count,
        "enqueued": enqueued,
        "deduped": outcome.deduped,
    }
    if outcome.close_reason:
        body["closeReason"] = outcome.close_reason
    if task_id:
        body["taskId"] = task_id
    return body


def _queue_superseded(rt, session_id: str, outcome) -> None:
    """Queue the group this turn ended by naming a new one; the scheduler's sweep does it if the broker is down."""
    try:
        enqueue_assessment(
            rt.celery,
            rt.store,
            rt.hasher,
            session_id=session_id,
            group_id=outcome.superseded,
            ctx=g.ctx,
            tracked_skills=list(outcome.tracked_skills or []),
        )
    except BrokerUnavailable:
        log_event(log, "assessment_enqueue_deferred", logging.WARNING, reason="broker_unavailable")
