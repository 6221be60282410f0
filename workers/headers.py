"""The running task's message headers: a leaf module (it imports nothing else from `workers`).

Celery's protocol 2 merges custom headers into the request; `request_headers` gathers them back, and
`carried_headers` keeps only those a retry, a redrive or a dead letter may carry (`coachup.deadletters`).
"""

from __future__ import annotations

from coachup.context import RequestContext
from coachup.deadletters import safe_headers

__all__ = ["request_headers", "carried_headers", "redrive_count"]


def request_headers(request) -> dict:
    """The custom message headers of the running task."""
    headers = dict(getattr(request, "headers", None) or {})
    for key in RequestContext.__dataclass_fields__:
        value = getattr(request, key, None)
        if value is not None:
            headers.setdefault(key, value)
    for key in ("redriveCount", "firstFailureAtMs", "enqueuedAtMs"):
        value = getattr(request, key, None)
        if value is not None:
            headers.setdefault(key, value)
    return headers


def carried_headers(request) -> dict:
    """The safe custom headers of the running task (what a retry, a redrive or a dead letter sends on)."""
    return safe_headers(request_headers(request))


def redrive_count(request) -> int:
    """How often this job was redriven from the dead-letter queue (0: never)."""
    return int(carried_headers(request).get("redriveCount") or 0)
