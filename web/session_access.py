"""The one place a route asks whether the caller may use a session, a job or an audio object.

Every route that takes a session id calls `require_session_access(session_id, write=...)` after validating
its input and before it reads or writes anything of the session; the job and audio routes call
`require_job_access` / `require_object_access`. Someone else's object answers 404 `not_found`, exactly as
an unknown one does on that route (never 403: that would confirm it exists).

- A write claims a new session for the caller (`coachup.store.owners.claim_session`): the first writer owns
  it, and a later write by another subject is refused before anything is written. The two intake routes
  (`POST /messages/ingest`, `POST /assessments/run` with a transcript) make the same check inside their write
  transaction instead (`coachup.store.txn.session_claimed`, answered with `not_found`), so it costs them no
  transaction of its own.
- A read of a session nobody has written yet passes (the route answers as it does for any unknown session).
- The admin token (`web.principal`) acts across owners; legacy rows (written before owners) are readable
  with it only.
"""

from __future__ import annotations

from coachup.store.owners import claim_session, job_owner, object_owner, record_object, session_owner

from .errors import ApiError
from .principal import current_principal
from .runtime import runtime

__all__ = [
    "not_found",
    "require_session_access",
    "require_job_access",
    "require_object_access",
    "grant_object",
    "caller_owner",
]


def not_found(what: str) -> ApiError:
    """The answer for someone else's object: the route's own 404 for an unknown one."""
    return ApiError(404, "not_found", f"unknown {what}")


def require_session_access(session_id: str | None, *, write: bool = False) -> None:
    """Raise 404 when the caller may not use `session_id` (None: no session named, nothing to check)."""
    if session_id is None:
        return
    principal = current_principal()
    store = runtime().store
    if write:
        owner = claim_session(store, session_id, principal.owner)
        if owner != principal.owner and not principal.admin:
            raise not_found("session")
        return
    exists, owner = session_owner(store, session_id)
    if exists and owner != principal.owner and not principal.admin:
        raise not_found("session")


def require_job_access(job_id: str) -> None:
    """Raise 404 when job `job_id` belongs to someone else (an unknown job is the route's own 404)."""
    principal = current_principal()
    exists, owner = job_owner(runtime().store, job_id)
    if exists and owner != principal.owner and not principal.admin:
        raise not_found("job")


def require_object_access(key: str) -> None:
    """Raise 404 unless audio object `key` was handed to the caller (an operator may read any)."""
    principal = current_principal()
    if principal.admin:
        return
    if object_owner(runtime().store, key) != principal.owner:
        raise not_found("object")


def grant_object(key: str) -> None:
    """Record the caller as the owner of a new audio object key this API hands out or stores."""
    record_object(runtime().store, key, current_principal().owner)


def caller_owner() -> str:
    """The owner a new job or object of this request is written for."""
    return current_principal().owner
