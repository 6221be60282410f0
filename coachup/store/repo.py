"""Data access for turns, groups, jobs and assessment results. Every write is one short transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, exists, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .ingest import (
    GroupConflict,
    GroupIdle,
    IngestOutcome,
    ingest_turn,
    new_group_id,
    remember_tracked,
    write_assessment_job,
)
from .models import (
    ACTIVE,
    IDLE,
    AssessmentResult,
    InteractionGroup,
    Job,
    SessionRow,
    TranscriptTurn,
    table_of,
    utcnow,
)
from .txn import session_locked

__all__ = ["Store", "IngestOutcome", "GroupIdle", "GroupConflict", "TurnRecord", "new_group_id"]

ACTIVE_JOB_STATES = ("queued", "running", "done")


@dataclass(frozen=True)
class TurnRecord:
    seq: int
    role: str
    content: str
    ts: datetime | None
    message_id: str
    group_id: str
    row_id: int


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class Store:
    """The durable store. Build with `coachup.store.create_store(url)`."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._sessions()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # ---- turns and groups ----------------------------------------------------------------------------
    def ingest_turn(
        self,
        *,
        session_id: str,
        message_id: str,
        role: str,
        content: str,
        ts: datetime | None,
        group_id: str | None,
        end_reason: str | None,
        max_turns: int,
        tracked_skills: list[str] | None = None,
        assessment_job: dict | None = None,
        owner: str | None = None,
        admin: bool = False,
        check_skills: list[str] | None = None,
    ) -> IngestOutcome:
        """Store one turn once, under its session's lock (`coachup.store.ingest`); with `assessment_job`, the
        assessment job of a group it ends is written in the same transaction (the outbox). `owner`, `admin`,
        `check_skills`: the caller's claim and the skill ids to check, in that transaction (`txn.session_claimed`)."""
        return ingest_turn(
            self.engine,
            session_id=session_id,
            message_id=message_id,
            role=role,
            content=content,
            ts=ts,
            group_id=group_id,
            end_reason=end_reason,
            max_turns=max_turns,
            tracked_skills=tracked_skills,
            assessment_job=assessment_job,
            owner=owner,
            admin=admin,
            check_skills=check_skills,
        )

    def close_group(self, session_id: str, group_id: str, reason: str, *, idle_before: datetime | None = None) -> bool:
        """End an active group (it becomes `idle`); True when this call ended it.

        `idle_before`: only if its last turn is older (the sweep). The condition sits in the UPDATE itself,
        so PostgreSQL re-checks it after waiting on a turn being written: a turn that just arrived keeps
        its group active.
        """
        conditions = [
            InteractionGroup.session_id == session_id,
            InteractionGroup.group_id == group_id,
            InteractionGroup.state == ACTIVE,
        ]
        if idle_before is not None:
            conditions.append(InteractionGroup.last_turn_at < idle_before)
        with self.session() as s, s.begin():
            res = s.execute(
                update(InteractionGroup).where(*conditions).values(state=IDLE, close_reason=reason, closed_at=utcnow())
            )
            return cast("CursorResult[Any]", res).rowcount == 1

    def close_group_and_queue_assessment(
        self, session_id: str, group_id: str, reason: str, *, request_id: str | None, params: dict, context: dict | None
    ) -> tuple[str, bool]:
        """End the group (when active) and queue its assessment in one transaction (the session's lock held):
        (job id, written now?). A group with a queued, running or done assessment answers with that job; else a
        new unpublished row (the outbox relay publishes it). Either both are committed or neither: a failure
        leaves the group as it was, never closed without its job."""
        with session_locked(self.engine, session_id) as conn:
            now = utcnow()
            groups = table_of(InteractionGroup)
            conn.execute(
                update(groups)
                .where(groups.c.session_id == session_id, groups.c.group_id == group_id, groups.c.state == ACTIVE)
                .values(state=IDLE, close_reason=reason, closed_at=now)
            )
            jobs = table_of(Job)
            existing = conn.scalar(
                select(jobs.c.id)
                .where(
                    jobs.c.kind == "assessment",
                    jobs.c.session_id == session_id,
                    jobs.c.group_id == group_id,
                    jobs.c.status.in_(ACTIVE_JOB_STATES),
                )
                .order_by(jobs.c.created_at.desc())
                .limit(1)
            )
            if existing is not None:
                return existing, False
            job = {"request_id": request_id, "params": params, "context": context}
            return write_assessment_job(conn, session_id, group_id, job, None, now)

    def close_idle_groups(self, idle_for: timedelta, limit: int = 500) -> list[tuple[str, str]]:
        """End active groups whose last turn is older than `idle_for`; return the ones this call ended."""
        cutoff = utcnow() - idle_for
        closed = []
        with self.session() as s, s.begin():
            rows = s.execute(
                select(InteractionGroup.session_id, InteractionGroup.group_id)
                .where(InteractionGroup.state == ACTIVE, InteractionGroup.last_turn_at < cutoff)
                .limit(limit)
            ).all()
        for session_id, group_id in rows:
            if self.close_group(session_id, group_id, "idle", idle_before=cutoff):
                closed.append((session_id, group_id))
        return closed

    def closed_groups_awaiting_job(self, limit: int = 500) -> list[tuple[str, str]]:
        """Idle groups with turns and no job at all: their publish failed or never happened.

        A group whose job failed is not returned: a failed job belongs to the dead-letter path, and
        queueing it again here would loop a poison job forever.
        """
        any_job = exists().where(
            and_(
                Job.kind == "assessment",
                Job.session_id == InteractionGroup.session_id,
                Job.group_id == InteractionGroup.group_id,
            )
        )
        result = exists().where(
            and_(
                AssessmentResult.session_id == InteractionGroup.session_id,
                AssessmentResult.group_id == InteractionGroup.group_id,
            )
        )
        with self.session() as s:
            rows = s.execute(
                select(InteractionGroup.session_id, InteractionGroup.group_id)
                .where(InteractionGroup.state == IDLE, InteractionGroup.turn_count > 0, ~any_job, ~result)
                .limit(limit)
            ).all()
        return [(a, b) for a, b in rows]

    def group_info(self, session_id: str, group_id: str) -> dict | None:
        with self.session() as s:
            g = s.scalar(
                select(InteractionGroup).where(
                    InteractionGroup.session_id == session_id, InteractionGroup.group_id == group_id
                )
            )
            if g is None:
                return None
            return {"groupId": g.group_id, "state": g.state, "turnCount": g.turn_count, "closeReason": g.close_reason}

    def latest_group_id(self, session_id: str) -> str | None:
        with self.session() as s:
            return s.scalar(
                select(InteractionGroup.group_id)
                .where(InteractionGroup.session_id == session_id)
                .order_by(InteractionGroup.id.desc())
                .limit(1)
            )

    def load_turns(self, session_id: str, group_id: str) -> list[TurnRecord]:
        with self.session() as s:
            rows = s.scalars(
                select(TranscriptTurn)
                .where(TranscriptTurn.session_id == session_id, TranscriptTurn.group_id == group_id)
                .order_by(TranscriptTurn.seq)
            ).all()
            return [TurnRecord(r.seq, r.role, r.content, _aware(r.ts), r.message_id, r.group_id, r.id) for r in rows]

    # ---- jobs ----------------------------------------------------------------------------------------
    def create_job(
        self,
        kind: str,
        *,
        session_id: str | None = None,
        group_id: str | None = None,
        request_id: str | None = None,
        params: dict | None = None,
        job_id: str | None = None,
        owner: str | None = None,
        context: dict | None = None,
    ) -> str:
        """Write a `queued` job row; its id (a new UUIDv4 unless `job_id` is given) is also its task id.

        The row is unpublished (`coachup.store.outbox`): the outbox relay sends its message with `context`
        (`RequestContext.to_headers()`) as the request context.

        A given `job_id` that already exists raises `IntegrityError`: deterministic ids make "one job of
        this kind per subject" a primary-key rule (the finalize callback uses it). `owner`: the caller's;
        when not given, the session's owner (a job acts for whoever owns the session it works on).
        """
        job_id = job_id or str(uuid.uuid4())
        with self.session() as s, s.begin():
            if owner is None and session_id is not None:
                owner = _session_owner(s, session_id)
            s.add(
                Job(
                    id=job_id,
                    kind=kind,
                    status="queued",
                    session_id=session_id,
                    group_id=group_id,
                    request_id=request_id,
                    params=params,
                    owner=owner,
                    publish_context=context,
                )
            )
        return job_id

    def create_assessment_job(
        self,
        session_id: str,
        group_id: str,
        *,
        request_id: str | None,
        params: dict,
        only_if_none: bool = False,
        context: dict | None = None,
    ) -> tuple[str, bool]:
        """(job id, created) of the group's assessment: a new `queued` row, or the active one a concurrent caller
        wrote first (the partial unique index `uq_job_active_assessment` decides, not a read before the write).

        `only_if_none` (the scheduler's sweep): write nothing when the group has any assessment job already,
        read in the insert's transaction; then (that job's id, False). Two sweeps at once meet at the unique index.
        """
        job_id = str(uuid.uuid4())
        try:
            with self.session() as s, s.begin():
                earlier = (
                    s.scalar(
                        select(Job.id)
                        .where(Job.kind == "assessment", Job.session_id == session_id, Job.group_id == group_id)
                        .limit(1)
                    )
                    if only_if_none
                    else None
                )
                if earlier is not None:
                    return earlier, False
                # a job acts for whoever owns the session it works on (issue 13), as `create_job` does
                owner = _session_owner(s, session_id)
                s.add(
                    Job(
                        id=job_id,
                        kind="assessment",
                        status="queued",
                        session_id=session_id,
                        group_id=group_id,
                        request_id=request_id,
                        params=params,
                        owner=owner,
                        publish_context=context,
                    )
                )
            return job_id, True
        except IntegrityError:
            existing = self.active_assessment_job(session_id, group_id)
            if existing is None:  # the other job finished between its insert and our read: nothing to join
                raise
            return existing["taskId"], False

    def active_assessment_job(self, session_id: str, group_id: str) -> dict | None:
        with self.session() as s:
            job = s.scalar(
                select(Job)
                .where(
                    Job.kind == "assessment",
                    Job.session_id == session_id,
                    Job.group_id == group_id,
                    Job.status.in_(ACTIVE_JOB_STATES),
                )
                .order_by(Job.created_at.desc())
                .limit(1)
            )
            return _job_dict(job) if job else None

    def latest_assessment_job(self, session_id: str, group_id: str) -> dict | None:
        with self.session() as s:
            job = s.scalar(
                select(Job)
                .where(Job.kind == "assessment", Job.session_id == session_id, Job.group_id == group_id)
                .order_by(Job.created_at.desc())
                .limit(1)
            )
            return _job_dict(job) if job else None

    def get_job(self, job_id: str) -> dict | None:
        with self.session() as s:
            job = s.get(Job, job_id)
            return _job_dict(job) if job else None

    def job_record(self, job_id: str) -> Job | None:
        with self.session() as s:
            return s.get(Job, job_id)

    def mark_job(
        self,
        job_id: str,
        status: str,
        *,
        error_type: str | None = None,
        error_message: str | None = None,
        result: dict | None = None,
        attempt: bool = False,
    ) -> None:
        values: dict = {
            "status": status,
            "updated_at": utcnow(),
            "error_type": error_type,
            "error_message": error_message,
        }
        if result is not None:
            values["result"] = result
        if attempt:
            values["attempts"] = Job.attempts + 1
        with self.session() as s, s.begin():
            s.execute(update(Job).where(Job.id == job_id).values(**values))

    def queued_jobs_idle_since(self, kind: str, cutoff: datetime, limit: int = 200) -> list[dict]:
        """Published jobs of `kind` still `queued` whose row has not changed since `cutoff`, oldest first.

        A row never published is the outbox relay's (`coachup.store.outbox`), not the requeue sweep's.

        `seen` is the stored `updated_at` as read, for `claim_requeue`; `updatedAt` the same, timezone-aware.
        """
        with self.session() as s:
            rows = s.scalars(
                select(Job)
                .where(
                    Job.kind == kind,
                    Job.status == "queued",
                    Job.published_at.is_not(None),  # publishing bumps `updated_at` too
                    Job.updated_at < cutoff,
                )
                .order_by(Job.updated_at)
                .limit(limit)
            ).all()
            return [
                {
                    "id": j.id,
                    "sessionId": j.session_id,
                    "groupId": j.group_id,
                    "requestId": j.request_id,
                    "params": j.params or {},
                    "updatedAt": _aware(j.updated_at),
                    "seen": j.updated_at,
                }
                for j in rows
            ]

    def claim_requeue(self, job_id: str, seen_updated_at: datetime) -> bool:
        """Bump a still-queued job's `updated_at` if nobody touched it since `seen_updated_at`.

        True means this caller won the right to publish the job again (a worker that started it meanwhile,
        or a second sweeper, makes this False).
        """
        with self.session() as s, s.begin():
            result = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "queued", Job.updated_at == seen_updated_at)
                .values(updated_at=utcnow())
            )
            return cast("CursorResult[Any]", result).rowcount == 1

    # ---- assessment results --------------------------------------------------------------------------
    def save_assessment(
        self, *, session_id: str, group_id: str, job_id: str, rubric_version: str, summary: dict
    ) -> bool:
        """Store the summary once per (session, group); False when it already existed."""
        try:
            with self.session() as s, s.begin():
                s.add(
                    AssessmentResult(
                        session_id=session_id,
                        group_id=group_id,
                        job_id=job_id,
                        rubric_version=rubric_version,
                        summary=summary,
                    )
                )
            return True
        except IntegrityError:
            return False

    def get_assessment(self, session_id: str, group_id: str) -> dict | None:
        with self.session() as s:
            row = s.scalar(
                select(AssessmentResult).where(
                    AssessmentResult.session_id == session_id, AssessmentResult.group_id == group_id
                )
            )
            return row.summary if row else None

    def count_assessments(self, session_id: str, group_id: str) -> int:
        with self.session() as s:
            return (
                s.scalar(
                    select(func.count())
                    .select_from(AssessmentResult)
                    .where(AssessmentResult.session_id == session_id, AssessmentResult.group_id == group_id)
                )
                or 0
            )

    def session_exists(self, session_id: str) -> bool:
        with self.session() as s:
            return s.get(SessionRow, session_id) is not None

    # ---- sessions ------------------------------------------------------------------------------------
    def tracked_skills(self, session_id: str) -> tuple[str, ...] | None:
        """The skill ids the session tracks (None: it tracks the defaults, or is unknown)."""
        with self.session() as s:
            row = s.get(SessionRow, session_id)
            return tuple(row.tracked_skills) if row is not None and row.tracked_skills else None

    def remember_tracked_skills(self, session_id: str, skills: list[str]) -> tuple[str, ...] | None:
        """Make `skills` the session's tracked skills (creating the session); an empty list clears them."""
        with session_locked(self.engine, session_id) as conn:
            return remember_tracked(conn, session_id, skills)

    def counts(self) -> dict[str, int]:
        """How many sessions and stored assessment results the store holds."""
        with self.session() as s:
            return {
                "sessions": s.scalar(select(func.count()).select_from(SessionRow)) or 0,
                "results": s.scalar(select(func.count()).select_from(AssessmentResult)) or 0,
            }


def _job_dict(job: Job) -> dict:
    return {
        "taskId": job.id,
        "kind": job.kind,
        "status": job.status,
        "attempts": job.attempts,
        "requestId": job.request_id,
        "groupId": job.group_id,
        "error": ({"type": job.error_type, "message": job.error_message} if job.error_type else None),
        "result": job.result,
        "createdAt": _iso(job.created_at),
        "updatedAt": _iso(job.updated_at),
    }


def _iso(value: datetime | None) -> str | None:
    value = _aware(value)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z") if value else None


def _session_owner(s, session_id: str) -> str | None:
    """The owner of `session_id` as read in `s`'s transaction: a job acts for whoever owns its session."""
    return s.scalar(select(SessionRow.owner).where(SessionRow.session_id == session_id))
