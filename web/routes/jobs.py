"""`GET /api/v1/jobs/{taskId}`: the state of any job."""

from __future__ import annotations

from flask import Blueprint

from coachup.deadletters import dead_letter_id

from ..errors import ApiError
from ..runtime import runtime
from ..session_access import require_job_access
from ..validation import ID_PATTERN

bp = Blueprint("jobs", __name__)


@bp.get("/api/v1/jobs/<task_id>")
def get_job(task_id: str):
    """The job's state, `requestId`, attempts and timestamps, and `deadLetterId` when it died (else null)."""
    if not ID_PATTERN.match(task_id):
        raise ApiError(400, "validation_error", "taskId must be an id")
    require_job_access(task_id)
    rt = runtime()
    job = rt.store.get_job(task_id)
    if job is None:
        raise ApiError(404, "not_found", "unknown job")
    return {**job, "deadLetterId": dead_letter_id(rt.celery.coachup.broker.dead_letters(rt.store), job)}
