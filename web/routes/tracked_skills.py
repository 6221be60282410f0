"""`GET /chat/tracked-skills?session_id=`: the skills a session's interactions are assessed on.

The front end's tracked-skills proxy forwards its query string here and shows whatever JSON comes back
(`{skills: []}` on error). A session's own choice (`trackedSkills` on ingest or run) wins; otherwise, and
for a session not seen yet, the defaults (`COACHUP_DEFAULT_SKILLS`). `source` says which.
"""

from __future__ import annotations

from flask import Blueprint, g, request

from coachup.store.catalogue import list_skills

from ..runtime import runtime
from ..session_access import require_session_access
from ..validation import req_id_field

bp = Blueprint("tracked_skills", __name__)


@bp.get("/chat/tracked-skills")
def tracked_skills():
    rt = runtime()
    args = dict(request.args.items())
    session_id = req_id_field({"session_id": args.get("session_id") or args.get("sessionId")}, "session_id")
    require_session_access(session_id)
    g.log_fields["sessionIdHash"] = rt.hasher.session(session_id)
    chosen = rt.store.tracked_skills(session_id)
    ids = list(chosen or rt.settings.default_skills)
    catalogue = {s["id"]: s for s in list_skills(rt.store)}
    skills = [
        {"id": i, "name": catalogue[i]["title"], "category": catalogue[i]["category"]} for i in ids if i in catalogue
    ]
    return {"sessionId": session_id, "skills": skills, "source": "session" if chosen else "default"}
