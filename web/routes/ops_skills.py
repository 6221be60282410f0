"""Ops routes of the skills catalogue (admin token): list the criteria library, add or update one skill,
sync the whole catalogue with the front end's. docs/skills.md is the operator's page."""

from __future__ import annotations

import logging

from flask import Blueprint

from coachup.errors import ValidationFailed
from coachup.logs import log_event
from coachup.store.catalogue import sync_skills, upsert_skill
from coachup.store.skill_records import criteria_library

from ..admin import require_admin
from ..errors import ApiError
from ..runtime import runtime
from ..validation import json_body, opt_bool

bp = Blueprint("ops_skills", __name__)
bp.before_request(require_admin)
log = logging.getLogger("coachup.api")

MAX_SYNC_SKILLS = 500


@bp.get("/api/v1/ops/skills/criteria")
def criteria():
    """Every criterion a skill may use (the offline assessor can judge each one), id and sentence."""
    return {"criteria": [{"id": k, "text": v} for k, v in sorted(criteria_library().items())]}


@bp.put("/api/v1/ops/skills/<skill_id>")
def put_skill(skill_id: str):
    """Add or update one skill: `{title, category, description, criteria: [criterion ids]}`."""
    data = json_body()
    if data.get("id", skill_id) != skill_id:
        raise ApiError(400, "validation_error", "the body's id differs from the URL's")
    try:
        outcome, skill = upsert_skill(runtime().store, {**data, "id": skill_id})
    except ValidationFailed as exc:
        raise ApiError(400, "validation_error", exc.message) from None
    log_event(log, "skill_upserted", outcome=outcome)
    return {"outcome": outcome, "skill": skill}, 201 if outcome == "created" else 200


@bp.post("/api/v1/ops/skills/sync")
def sync():
    """Upsert every skill of `skills` in one transaction; `deactivateMissing` retires the ones not listed."""
    data = json_body()
    skills = data.get("skills")
    if not isinstance(skills, list) or not 1 <= len(skills) <= MAX_SYNC_SKILLS:
        raise ApiError(400, "validation_error", f"skills must be a list of 1-{MAX_SYNC_SKILLS} skill records")
    deactivate = opt_bool(data, "deactivateMissing")
    try:
        report = sync_skills(runtime().store, skills, deactivate_missing=deactivate)
    except ValidationFailed as exc:
        raise ApiError(400, "validation_error", exc.message) from None
    counts = {k: len(v) for k, v in report.items()}
    # (`created` is a LogRecord attribute: the log line names its counts apart)
    log_event(log, "skills_synced", **{f"skills{k.capitalize()}": n for k, n in counts.items()})
    return {**counts, "ids": report}
