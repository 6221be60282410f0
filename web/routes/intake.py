"""`POST /messages/ingest`: store a transcript turn once and decide whether its group has ended."""

from __future__ import annotations

from flask import Blueprint, g

from coachup.store import GroupClosed
from workers.enqueue import enqueue_assessment
from workers.summary_enqueue import enqueue_summary_if_due

from ..errors import ApiError
from ..runtime import runtime
from ..validation import json_body, opt_bool, opt_id_field, opt_str, opt_ts, req_id_field

bp = Blueprint("intake", __name__)

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

    end_reason = "explicit" if end else ("closing_cue" if rt.closing_cue.is_closing(content) else None)
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
        )
    except GroupClosed:
        raise ApiError(409, "group_closed", "that group has ended; omit groupId to start a new one") from None
    g.log_fields.update(
        sessionIdHash=rt.hasher.session(session_id),
        groupId=rt.hasher.group(outcome.group_id),
        turnCount=outcome.turn_count,
        deduped=outcome.deduped,
        state=outcome.state,
    )
    # every SUMMARY_WINDOW_N stored turns: the session's rolling summary job (never fails the ingest)
    enqueue_summary_if_due(rt.celery, rt.store, rt.hasher, session_id=session_id, deduped=outcome.deduped, ctx=g.ctx)

    task_id, enqueued = None, False
    if outcome.state == "closed":
        # BrokerUnavailable answers 503; the turn and the closed group stay stored, and the client's retry
        # (deduped) or the scheduler's sweep queues the group once the broker is back
        task_id, enqueued = enqueue_assessment(
            rt.celery, rt.store, rt.hasher, session_id=session_id, group_id=outcome.group_id, ctx=g.ctx
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
