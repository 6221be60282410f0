"""What `GET /assessments/{sessionId}` shows, read in one snapshot.

The front end polls every 1.2 s and marks a group's chip done the first time `latestGroupId` names it,
storing the `summary` of that same response and never asking again. So:

- `latest` is the group whose assessment finished most recently (its summary stored, or its job failed
  with no newer job running), never a group still waiting: the first response naming a group carries its
  result. Most recently *finished*, not newest: when two groups of a session are assessed at once and
  the newer one finishes first, the older one is still named once it finishes.
- `pending` is the session's newest group when it has not finished (`active`, `pending`, `queued`,
  `running`), exposed apart so a new interaction never hides the last result.
- every read happens in one snapshot (`txn.snapshot`), so a status and its summary always agree: `done`
  comes with its summary, never with None.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select, union_all

from .models import ACTIVE, AssessmentResult, InteractionGroup, Job, SessionRow, table_of
from .repo import Store, _iso
from .txn import snapshot

__all__ = ["GroupView", "AssessmentView", "assessment_view", "FINISHED"]

FINISHED = ("done", "failed")

_G, _R, _J, _S = table_of(InteractionGroup), table_of(AssessmentResult), table_of(Job), table_of(SessionRow)


@dataclass(frozen=True)
class GroupView:
    """One group's assessment as the API reports it. `status`: active|pending|queued|running|done|failed."""

    group_id: str
    state: str  # the group's own state: active | idle
    turn_count: int
    status: str
    summary: dict | None
    task_id: str | None
    error: dict | None
    finished_at: str | None = None


@dataclass(frozen=True)
class AssessmentView:
    session_id: str
    latest: GroupView | None  # the most recently finished group
    pending: GroupView | None  # the newest group, while it has not finished
    selected: GroupView | None  # the `?groupId=` group, else latest, else pending; None: no such group


def assessment_view(store: Store, session_id: str, group_id: str | None = None) -> AssessmentView | None:
    """The session's assessments in one snapshot; None when the session is unknown."""
    with snapshot(store.engine) as conn:
        if conn.execute(select(_S.c.session_id).where(_S.c.session_id == session_id)).first() is None:
            return None
        latest_id = _latest_finished(conn, session_id)
        latest = _group(conn, session_id, latest_id) if latest_id else None
        newest_id = conn.scalar(
            select(_G.c.group_id).where(_G.c.session_id == session_id).order_by(_G.c.id.desc()).limit(1)
        )
        pending = None
        if newest_id is not None and newest_id != latest_id:
            newest = _group(conn, session_id, newest_id)
            pending = newest if newest is not None and newest.status not in FINISHED else None
        if group_id is None:
            selected = latest or pending
        elif group_id == latest_id:
            selected = latest
        else:
            selected = _group(conn, session_id, group_id)
        return AssessmentView(session_id, latest, pending, selected)


def _latest_finished(conn: Connection, session_id: str) -> str | None:
    """The group whose summary was stored, or whose last job failed, most recently."""
    j, newer = _J.alias("j"), _J.alias("newer")
    done = select(_R.c.group_id.label("gid"), _R.c.created_at.label("at")).where(_R.c.session_id == session_id)
    has_result = select(_R.c.id).where(_R.c.session_id == j.c.session_id, _R.c.group_id == j.c.group_id).exists()
    has_newer_job = (
        select(newer.c.id)
        .where(
            newer.c.kind == "assessment",
            newer.c.session_id == j.c.session_id,
            newer.c.group_id == j.c.group_id,
            newer.c.created_at > j.c.created_at,
        )
        .exists()
    )
    failed = select(j.c.group_id.label("gid"), j.c.updated_at.label("at")).where(
        j.c.kind == "assessment", j.c.session_id == session_id, j.c.status == "failed", ~has_result, ~has_newer_job
    )
    finished = union_all(done, failed).subquery()
    return conn.scalar(select(finished.c.gid).order_by(finished.c.at.desc(), finished.c.gid).limit(1))


def _group(conn: Connection, session_id: str, group_id: str) -> GroupView | None:
    group = conn.execute(select(_G).where(_G.c.session_id == session_id, _G.c.group_id == group_id)).first()
    if group is None:
        return None
    result = conn.execute(
        select(_R.c.summary, _R.c.created_at).where(_R.c.session_id == session_id, _R.c.group_id == group_id)
    ).first()
    job = conn.execute(
        select(_J.c.id, _J.c.status, _J.c.error_type, _J.c.error_message, _J.c.updated_at)
        .where(_J.c.kind == "assessment", _J.c.session_id == session_id, _J.c.group_id == group_id)
        .order_by(_J.c.created_at.desc())
        .limit(1)
    ).first()
    error = None
    if result is not None:
        status, finished_at = "done", _iso(result.created_at)
    elif job is not None and job.status in ("queued", "running", "failed"):
        status, finished_at = job.status, (_iso(job.updated_at) if job.status == "failed" else None)
        if job.status == "failed":
            error = {"type": job.error_type, "message": job.error_message}
    else:
        # no job yet: still going on, or ended and waiting for the scheduler to queue it (a `done` job
        # without its summary cannot be seen in one snapshot: the summary is committed first)
        status, finished_at = ("active" if group.state == ACTIVE else "pending"), None
    return GroupView(
        group_id=group.group_id,
        state=group.state,
        turn_count=group.turn_count,
        status=status,
        summary=result.summary if result is not None else None,
        task_id=job.id if job is not None else None,
        error=error,
        finished_at=finished_at,
    )
