"""Helpers of the speech views: typed core errors to HTTP, bounded waits on a job row, provider checks."""

from __future__ import annotations

import time

from coachup.errors import CoachupError
from coachup.speech.providers import check_configured, resolve_provider
from coachup.store import Store

from .errors import ApiError

__all__ = ["to_api_error", "wait_for_job", "job_response", "chosen_provider", "STATUS_BY_TYPE"]

STATUS_BY_TYPE = {
    "validation_error": 400,
    "audio_url_rejected": 400,
    "unsupported_language": 400,
    "not_found": 404,
    "object_not_found": 404,
    "audio_url_not_found": 422,
    "payload_too_large": 413,
    "unsupported_audio": 415,
    "provider_unconfigured": 501,
    "storage_unconfigured": 501,
}


def to_api_error(exc: CoachupError) -> ApiError:
    """A core failure as an API error (upstream failures are 502)."""
    return ApiError(STATUS_BY_TYPE.get(exc.type, 502), exc.type, exc.message)


def chosen_provider(kind: str, settings, requested) -> str:
    """Resolve the provider (precedence in `coachup.speech.providers`); 400/501 before anything is queued."""
    if requested is not None and not isinstance(requested, str):
        raise ApiError(400, "validation_error", "provider must be a string")
    try:
        name = resolve_provider(kind, settings, requested)
        check_configured(name, settings)
    except CoachupError as exc:
        raise to_api_error(exc) from None
    return name


def wait_for_job(store: Store, job_id: str, timeout_s: float) -> dict | None:
    """Poll the job row until it is done or failed, at most `timeout_s` seconds; None when it runs out."""
    deadline = time.monotonic() + timeout_s
    interval = 0.02
    while True:
        job = store.get_job(job_id)
        if job is not None and job["status"] in ("done", "failed"):
            return job
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.25)


def job_response(store: Store, job_id: str, *, wait: bool, timeout_s: float):
    """200 with the result, the job's typed error, or 202 with the job id when not waiting or out of time."""
    job = wait_for_job(store, job_id, timeout_s) if wait else None
    if job is None:
        current = store.get_job(job_id) or {"status": "queued"}
        return {"jobId": job_id, "status": current["status"], "statusUrl": f"/api/v1/jobs/{job_id}"}, 202
    if job["status"] == "failed":
        error = job.get("error") or {"type": "internal_error", "message": "job failed"}
        raise ApiError(STATUS_BY_TYPE.get(error["type"], 502), error["type"], error["message"] or "job failed")
    return job["result"], 200
