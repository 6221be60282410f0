"""`POST /assessments/run` queues a group's assessment; `GET /assessments/{sessionId}` reads it back."""

from __future__ import annotations

from flask import Blueprint, g, request

from coachup.assessment.skills import resolve_skills
from coachup.store import GroupIdle, new_group_id
from coachup.store.batch import ingest_turns
from workers.enqueue import enqueue_assessment, publish_assessment

from ..errors import ApiError
from ..runtime import runtime
from ..validation import ID_PATTERN, merged_params, opt_id_field, opt_str, opt_str_list, opt_ts, req_id_field
from .intake import MAX_TURN_CHARS, ROLES

bp = Blueprint("assessments", __name__)

MAX_INLINE_TURNS = 200


@bp.post("/assessments/run")
def run_assessment():
    rt = runtime()
    params = merged_params()
    session_id = req_id_field(params, "sessionId")
    group_id = opt_id_field(params, "groupId")
    tracked = opt_str_list(params, "trackedSkills", max_items=20)
    if tracked:
        _, unknown = resolve_skills(tracked)
        if unknown:
            raise ApiError(400, "validation_error", f"unknown skill ids: {', '.join(sorted(unknown))[:200]}")
    turns = _inline_turns(params.get("transcript"))
    g.log_fields.update(sessionIdHash=rt.hasher.session(session_id), inlineTurns=len(turns))
    g.log_params.update(transcriptTurns=len(turns), trackedSkillsCount=len(tracked or []))

    task_id = None
    if turns:
        group_id = group_id or new_group_id()
        # the turns, the close and the job row: one commit
        task_id = _store_inline(
            rt,
            session_id,
            group_id,
            turns,
            job={"request_id": g.ctx.requestId, "params": {"trackedSkills": tracked or []}},
        )
    else:
        group_id = group_id or rt.store.latest_group_id(session_id)
        if group_id is None:
            raise ApiError(404, "not_found", "no transcript stored for this session")
        info = rt.store.group_info(session_id, group_id)
        if info is None or info["turnCount"] == 0:
            raise ApiError(404, "not_found", "no such group for this session")
        rt.store.close_group(session_id, group_id, "api")
    g.log_fields["groupId"] = rt.hasher.group(group_id)
    if task_id is not None:
        publish_assessment(
            rt.celery, rt.store, rt.hasher, job_id=task_id, session_id=session_id, group_id=group_id, ctx=g.ctx
        )
    else:  # an existing group (or a resent transcript): queue it once, or answer with the job it has
        task_id, _ = enqueue_assessment(
            rt.celery, rt.store, rt.hasher, session_id=session_id, group_id=group_id, ctx=g.ctx, tracked_skills=tracked
        )
    return {"groupId": group_id, "taskId": task_id, "status": "accepted"}, 202


def _inline_turns(raw) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw or len(raw) > MAX_INLINE_TURNS:
        raise ApiError(400, "validation_error", f"transcript must be a list of 1-{MAX_INLINE_TURNS} turns")
    turns = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ApiError(400, "validation_error", f"transcript[{i}] must be an object")
        role = opt_str(item, "role", max_len=16, choices=ROLES) or "user"
        content = opt_str(item, "content", max_len=MAX_TURN_CHARS, required=True)
        message_id = item.get("messageId")
        if message_id is not None and (not isinstance(message_id, str) or not ID_PATTERN.match(message_id)):
            raise ApiError(400, "validation_error", f"transcript[{i}].messageId must be an id")
        turns.append({"role": role, "content": content, "ts": opt_ts(item, "ts"), "messageId": message_id})
    return turns


def _store_inline(rt, session_id: str, group_id: str, turns: list[dict], job: dict) -> str | None:
    """Store the turns and close the group; the job row written with them (None: the group was closed)."""
    rows = [
        (turn["messageId"] or f"{group_id}:{i}", turn["role"], turn["content"], turn["ts"])
        for i, turn in enumerate(turns)
    ]
    try:
        return ingest_turns(
            rt.store, session_id=session_id, group_id=group_id, turns=rows, close_reason="api", job=job
        ).job_id
    except GroupIdle:
        raise ApiError(409, "group_closed", "that group has ended; omit groupId to start a new one") from None


@bp.get("/assessments/<session_id>")
def get_assessment(session_id: str):
    rt = runtime()
    if not ID_PATTERN.match(session_id):
        raise ApiError(400, "validation_error", "sessionId must be an id")
    g.log_fields["sessionIdHash"] = rt.hasher.session(session_id)
    g.log_params["groupIdPresent"] = bool(request.args.get("groupId"))
    if not rt.store.session_exists(session_id):
        raise ApiError(404, "not_found", "unknown session")
    latest = rt.store.latest_group_id(session_id)
    group_id = request.args.get("groupId") or latest
    info = rt.store.group_info(session_id, group_id)
    if info is None:
        raise ApiError(404, "not_found", "no such group for this session")
    summary = rt.store.get_assessment(session_id, group_id)
    job = rt.store.active_assessment_job(session_id, group_id) or rt.store.latest_assessment_job(session_id, group_id)
    if summary is not None:
        status = "done"
    elif job is not None:
        status = job["status"]
    else:
        status = "active" if info["state"] == "active" else "pending"  # closed, waiting for the scheduler to queue it
    body = {"sessionId": session_id, "latestGroupId": latest, "groupId": group_id, "status": status, "summary": summary}
    if job is not None:
        body["taskId"] = job["taskId"]
        if status == "failed":
            body["error"] = job["error"]
    return body
