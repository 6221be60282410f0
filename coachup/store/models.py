"""Tables of the store. SQLite by default, PostgreSQL in production; the same schema on both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, String, Table, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "SessionRow",
    "InteractionGroup",
    "TranscriptTurn",
    "Job",
    "AssessmentResult",
    "SkillRow",
    "SchemaMeta",
    "utcnow",
    "ACTIVE",
    "IDLE",
    "table_of",
]

# The two states of an interaction group, in the front end's words: `active` while the interaction goes on,
# `idle` once it has ended (closing cue, max turns, explicit end, idle timeout, or an API run).
ACTIVE, IDLE = "active", "idle"


def table_of(model: type[Base]) -> Table:
    """The Core `Table` of a mapped class (typed: `__table__` is declared as a bare FromClause)."""
    return cast(Table, model.__table__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class SessionRow(Base):
    """One row per session: the lock every write of its turns takes, and the skills it tracks.

    Ingest locks this row (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite has one writer at a time), so turns
    of one session are written one after another whatever the number of API processes.
    """

    __tablename__ = "sessions"

    session_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    tracked_skills: Mapped[list | None] = mapped_column(JSON, nullable=True)  # skill ids; None: the defaults
    # who may use the session (and its groups, turns, results, summaries): a keyed hash of issuer + subject
    # (`coachup.owners`), set by the session's first write (`owners.claim_session`); `legacy` before owners
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InteractionGroup(Base):
    """A run of turns assessed together. `state` is `active` until a close rule fires, then `idle`.

    At most one group of a session is `active` (a partial unique index), so two turns arriving together
    can never open two groups.
    """

    __tablename__ = "interaction_groups"
    __table_args__ = (
        UniqueConstraint("session_id", "group_id", name="uq_group"),
        Index("ix_group_state_last", "state", "last_turn_at"),
        Index(
            "uq_group_one_active",
            "session_id",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(200), index=True)
    group_id: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    turn_count: Mapped[int] = mapped_column(Integer, default=0)
    close_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_turn_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TranscriptTurn(Base):
    """One stored message. `(session_id, message_id)` is the idempotency key of ingest; `seq` numbers the
    turns of a group 0, 1, 2, ... with no gap and no repeat (a unique index)."""

    __tablename__ = "transcript_turns"
    __table_args__ = (
        UniqueConstraint("session_id", "message_id", name="uq_turn_message"),
        Index("uq_turn_group_seq", "session_id", "group_id", "seq", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(200))
    group_id: Mapped[str] = mapped_column(String(100))
    message_id: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """Any queued unit of work, addressed by its Celery task id. Status: queued|running|done|failed.

    The row is also its own outbox record: `published_at` NULL means its message is still to be sent. The
    request that writes the row commits and answers; the outbox relay (`workers.relay`) claims the row
    (`publish_claimed_until`, a lease), publishes with the stored request context and sets `published_at`.
    """

    __tablename__ = "jobs"
    # ix_job_waiting: the scheduler's sweep looks for jobs still `queued` since long ago (workers/requeue.py)
    # uq_job_finalize_group: one finalize callback per group, whoever enqueues it and however often
    __table_args__ = (
        Index("ix_job_subject", "kind", "session_id", "group_id"),
        Index("ix_job_waiting", "status", "updated_at"),
        # ix_job_unpublished: the outbox relay's scan for rows whose message is not yet sent (coachup/store/outbox.py)
        Index(
            "ix_job_unpublished",
            "created_at",
            sqlite_where=text("published_at IS NULL"),
            postgresql_where=text("published_at IS NULL"),
        ),
        # uq_job_active_assessment: at most one queued-or-running assessment per group, whoever enqueues it
        # (two schedulers, concurrent `POST /assessments/run`): a database invariant, not check-then-insert
        Index(
            "uq_job_active_assessment",
            "session_id",
            "group_id",
            unique=True,
            sqlite_where=text("kind = 'assessment' AND status IN ('queued', 'running')"),
            postgresql_where=text("kind = 'assessment' AND status IN ('queued', 'running')"),
        ),
        Index(
            "uq_job_finalize_group",
            "session_id",
            "group_id",
            unique=True,
            sqlite_where=text("kind = 'finalize'"),
            postgresql_where=text("kind = 'finalize'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    session_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    group_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)  # its session's owner, or the caller's
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(400), nullable=True)
    params: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    # the outbox (coachup/store/outbox.py): NULL until the broker took the message; the claim lease of the
    # relay publishing it; how many publishes were tried; the request context its message headers carry
    # (`RequestContext.to_headers()`: request id, traceparent, hashed ids; never a raw id)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    publish_claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    publish_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    publish_context: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # the run lease (coachup/store/runs.py): which delivery of the job's message is running its work, and until
    # when; a second copy of the message finds it live and defers instead of calling the provider again
    run_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    run_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AssessmentResult(Base):
    """The stored summary of one group; unique per (session, group) so a rerun cannot write twice."""

    __tablename__ = "assessment_results"
    __table_args__ = (UniqueConstraint("session_id", "group_id", name="uq_assessment_group"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(200), index=True)
    group_id: Mapped[str] = mapped_column(String(100))
    job_id: Mapped[str] = mapped_column(String(64))
    rubric_version: Mapped[str] = mapped_column(String(16))
    summary: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SkillRow(Base):
    """The skills catalogue, seeded from `coachup.assessment.skills.SKILLS`."""

    __tablename__ = "skills"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64), index=True)
    description: Mapped[str] = mapped_column(Text)
    criteria: Mapped[list] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class SchemaMeta(Base):
    """Key/value facts about the schema itself; `version` says which data migrations have run."""

    __tablename__ = "coachup_schema"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
