"""`POST /assessments/run` queues a group's assessment; `GET /assessments/{sessionId}` reads it back.

The run answers 202 once the job row is committed (the outbox relay publishes it; the answer never waits on
the broker), so a 202 means the assessment will run, and a 503 (`store_unavailable`) that nothing was stored.

The read is what the front end polls (every 1.2 s, `MicContext`): its chip for a group turns done the first
time `latestGroupId` names that group, and keeps the `summary` of that response, so `latestGroupId` only
ever names a finished group (coachup/store/views.py) and a newer one is reported apart (`pendingGroupId`).
"""

from __future__ import annotations

from flask import Blueprint, g, request

from coachup.store import GroupConflict, GroupIdle, new_group_id
from coachup.store.batch import ingest_turns
from coachup.store.catalogue import list_skills
from coachup.store.skill_records import criteria_library
from coachup.store.txn import SessionNotOwned, UnknownSkills
from coachup.store.views import assessment_view
from workers.enqueue import enqueue_assessment, notify

from ..errors import ApiError
from ..idempotency import idempotent, key_group_id
from ..principal import current_principal
from ..runtime import runtime
from ..session_access import not_found, require_session_access
from ..skills_input import tracked_skills_field, unknown_skill_error
from ..summary_view import needs_catalogue, only_skill, present_summary
from ..validation import ID_PATTERN, merged_params, opt_id_field, opt_str, opt_ts, req_id_field
from .intake import MAX_TURN_CHARS, ROLES

bp = Blueprint("assessments", __name__)

MAX_INLINE_TURNS = 200


@bp.post("/assessments/run")
@idempotent
def run_assessment():
    rt = runtime()
    params = merged_params()
    session_id = req_id_field(params, "sessionId")
    group_id = opt_id_field(params, "groupId")
    tracked = tracked_skills_field(params, None)
    turns = _inline_turns(params.get("transcript"))
    g.log_fields.update(sessionIdHash=rt.hasher.session(session_id), inlineTurns=len(turns))
    g.log_params.update(transcriptTurns=len(turns), trackedSkillsCount=len(tracked or []))
    task_id = None
    if turns:
        # inline turns are a first write that claims a new session: the access check, the skill ids, the
        # session's tracked skills, the turns, the close and the job row are one transaction (one commit)
        group_id = group_id or key_group_id() or new_group_id()  # a retried key: the same group, assessed once
        principal = current_principal()
        task_id = _store_inline(
            rt,
            session_id,
            group_id,
            turns,
            # the job's skills: the request's, else (None) the session's own choice, else the defaults
            job={"request_id": g.ctx.requestId, "params": _job_params(tracked), "context": g.ctx.to_headers()},
            claim={"owner": principal.owner, "admin": principal.admin, "tracked": tracked, "check_skills": tracked},
        )
    else:
        if tracked:
            tracked_skills_field(params, rt.store)  # the ids against the catalogue
        # without turns the run works on groups the session already has, so it only needs to be the caller's
        # (an unknown session stays unknown: 404)
        require_session_access(session_id)
        group_id = group_id or rt.store.latest_group_id(session_id)
        if group_id is None:
            raise ApiError(404, "not_found", "no transcript stored for this session")
        info = rt.store.group_info(session_id, group_id)
        if info is None or info["turnCount"] == 0:
            raise ApiError(404, "not_found", "no such group for this session")
        # the close and the job row (or the job the group has): one commit
        job_skills = tracked if tracked is not None else list(rt.store.tracked_skills(session_id) or [])
        task_id, _ = rt.store.close_group_and_queue_assessment(
            session_id,
            group_id,
            "api",
            request_id=g.ctx.requestId,
            params={"trackedSkills": job_skills},
            context=g.ctx.to_headers(),
        )
        if tracked is not None:  # the session tracks these from now on (its later turns too)
            rt.store.remember_tracked_skills(session_id, tracked)
    g.log_fields["groupId"] = rt.hasher.group(group_id)
    if task_id is not None:  # committed with the turns or the close: the relay publishes it after this answer
        notify(rt.celery, rt.store, rt.hasher, [task_id])
    else:  # a resent transcript of a closed group: queue it once, or answer with the job it has
        job_skills = tracked if tracked is not None else list(rt.store.tracked_skills(session_id) or [])
        task_id, _ = enqueue_assessment(
            rt.celery,
            rt.store,
            rt.hasher,
            session_id=session_id,
            group_id=group_id,
            ctx=g.ctx,
            tracked_skills=job_skills,
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


def _job_params(tracked: list[str] | None) -> dict | None:
    return {"trackedSkills": tracked} if tracked is not None else None


def _store_inline(rt, session_id: str, group_id: str, turns: list[dict], job: dict, claim: dict) -> str | None:
    """Store the turns and close the group; the job row written with them (None: the group was closed)."""
    rows = [
        (turn["messageId"] or f"{group_id}:{i}", turn["role"], turn["content"], turn["ts"])
        for i, turn in enumerate(turns)
    ]
    try:
        return ingest_turns(
            rt.store, session_id=session_id, group_id=group_id, turns=rows, close_reason="api", job=job, **claim
        ).job_id
    except UnknownSkills as exc:
        raise unknown_skill_error(exc.ids) from None
    except SessionNotOwned:
        raise not_found("session") from None
    except GroupIdle:
        raise ApiError(
            409, "group_idle", "that group's interaction has ended; omit groupId to start a new one"
        ) from None
    except GroupConflict as exc:
        raise ApiError(
            409, "group_conflict", f"group {exc.active_group_id} of this session is active; send it or omit groupId"
        ) from None


@bp.get("/assessments/<session_id>")
def get_assessment(session_id: str):
    """The latest finished result (`latestGroupId`, `summary`) and the group still in progress (`pending*`)."""
    rt = runtime()
    if not ID_PATTERN.match(session_id):
        raise ApiError(400, "validation_error", "sessionId must be an id")
    group_id = opt_id_field(dict(request.args.items()), "groupId")
    require_session_access(session_id)
    g.log_fields["sessionIdHash"] = rt.hasher.session(session_id)
    g.log_params["groupIdPresent"] = group_id is not None
    view = assessment_view(rt.store, session_id, group_id)
    if view is None:
        raise ApiError(404, "not_found", "unknown session")
    selected = view.selected
    if group_id is not None and selected is None:
        raise ApiError(404, "not_found", "no such group for this session")
    summary = _readable(rt, selected.summary if selected else None)
    skill_id = request.headers.get("x-tracked-skill-id", "").strip()[:64]
    if skill_id:
        summary = only_skill(summary, skill_id)
    body = {
        "sessionId": session_id,
        "latestGroupId": view.latest.group_id if view.latest else None,
        "groupId": selected.group_id if selected else None,
        "status": selected.status if selected else None,
        "summary": summary,
        "pendingGroupId": view.pending.group_id if view.pending else None,
        "pendingStatus": view.pending.status if view.pending else None,
    }
    if selected is not None and selected.task_id:
        body["taskId"] = selected.task_id
    if selected is not None and selected.error:
        body["error"] = selected.error
    return body


def _readable(rt, summary: dict | None) -> dict | None:
    """The summary in the front end's shape (web/summary_view.py); the catalogue is read only when needed."""
    if not needs_catalogue(summary) and not _has_criterion_ids(summary):
        return present_summary(summary, {}, {})
    skills = {s["id"]: s for s in list_skills(rt.store, include_inactive=True)}
    return present_summary(summary, skills, criteria_library())


def _has_criterion_ids(summary: dict | None) -> bool:
    if not summary:
        return False
    library = criteria_library()
    return any(
        c in library
        for i in summary.get("skillAssessments") or []
        for k in ("metCriteria", "unmetCriteria")
        for c in i.get(k) or []
    )
