"""`POST /messages/ingest`: store a transcript turn once and decide whether its interaction has ended.

The answer is what the front end reads: `state` (`active` while the interaction goes on, `idle` once it
ended), `groupId`, `turnCount`, `enqueued` (an assessment was queued by this turn) and `deduped`.

A turn that ends a group commits with the group's assessment job row (the outbox, `coachup.store.outbox`); the
relay publishes it after the answer, so the answer never waits on the broker, and a 200 with `taskId` means the
assessment will run.
"""

from __future__ import annotations

from flask import Blueprint, g

from coachup.store import GroupIdle
from coachup.store.txn import SessionNotOwned, UnknownSkills
from workers.enqueue import enqueue_assessment, notify
from workers.summary_enqueue import enqueue_summary_if_due

from ..errors import ApiError
from ..principal import current_principal
from ..runtime import runtime
from ..session_access import not_found
from ..skills_input import tracked_skills_field, unknown_skill_error
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
    tracked = tracked_skills_field(data, None)  # the ids are checked against the catalogue in the write below
    principal = current_principal()

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
            assessment_job={"request_id": g.ctx.requestId, "context": g.ctx.to_headers()},
            # the session access check of `web.session_access`, in the write's transaction: the first write
            # claims the session; another owner's answers 404 with nothing written
            owner=principal.owner,
            admin=principal.admin,
            check_skills=tracked,
        )
    except UnknownSkills as exc:
        raise unknown_skill_error(exc.ids) from None
    except SessionNotOwned:
        raise not_found("session") from None
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
    enqueue_summary_if_due(
        rt.celery,
        rt.store,
        rt.hasher,
        session_id=session_id,
        deduped=outcome.deduped,
        ctx=g.ctx,
        session_turns=outcome.session_turns,
    )

    # the jobs committed with the turn: the relay thread publishes them (never waited on here)
    notify(rt.celery, rt.store, rt.hasher, [j for j in (outcome.job_id, outcome.superseded_job_id) if j])
    task_id, enqueued = outcome.job_id, outcome.job_created
    if outcome.state == "idle" and task_id is None:
        # a resent turn of an ended group: answer with its assessment job (queued anew only if it has none
        # or its job failed, as a first closing turn would have)
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
