"""`GET /api/v1/skills` (the catalogue, `?id=` or `?category=`) and `GET /api/v1/transcripts` (stored turns,
cursor-paginated, oldest first so the newest is last)."""

from __future__ import annotations

import re

from flask import Blueprint, g, request

from coachup.store.catalogue import BadCursor, decode_cursor, get_skill, list_skills, page_turns

from ..errors import ApiError
from ..runtime import runtime
from ..session_access import require_session_access
from ..validation import opt_id_field, opt_int, req_id_field

bp = Blueprint("catalogue", __name__)

_SLUG = re.compile(r"^[a-z0-9_-]{1,64}$")


def _slug(name: str) -> str | None:
    value = request.args.get(name)
    if value is None:
        return None
    if not _SLUG.match(value):
        raise ApiError(400, "validation_error", f"{name} must be 1-64 of a-z, 0-9, _ or -")
    return value


@bp.get("/api/v1/skills")
def skills():
    rt = runtime()
    skill_id, category = _slug("id"), _slug("category")
    if skill_id and category:
        raise ApiError(400, "validation_error", "send id or category, not both")
    g.log_fields["params"] = {k: v for k, v in (("id", skill_id), ("category", category)) if v}
    if skill_id:
        skill = get_skill(rt.store, skill_id)
        g.log_fields["itemFound"] = skill is not None
        if skill is None:
            raise ApiError(404, "not_found", "unknown skill")
        return {"skill": skill}
    items = list_skills(rt.store, category=category)
    g.log_fields["items"] = len(items)
    return {"skills": items}


@bp.get("/api/v1/transcripts")
def transcripts():
    rt = runtime()
    args = dict(request.args.items())
    session_id = req_id_field(args, "sessionId")
    group_id = opt_id_field(args, "groupId")
    limit = opt_int(args, "limit", default=20, lo=1, hi=100)
    cursor = args.get("cursor") or None
    require_session_access(session_id)
    g.log_fields["params"] = {
        "sessionIdHash": rt.hasher.session(session_id),
        "groupId": rt.hasher.group(group_id),
        "limit": limit,
        "cursorPresent": cursor is not None,
    }
    try:
        after = decode_cursor(cursor) if cursor else None
    except BadCursor:
        raise ApiError(400, "validation_error", "cursor is not one this API issued") from None
    items, next_cursor = page_turns(rt.store, session_id, group_id=group_id, limit=limit, after=after)
    g.log_fields.update(items=len(items), nextCursorPresent=next_cursor is not None)
    return {"sessionId": session_id, "groupId": group_id, "items": items, "nextCursor": next_cursor}
