"""Who owns what: the owner of a session (and so of its groups, turns, assessments and summaries), of a job,
of an audio object. An owner is a keyed hash (`coachup.owners.owner_of`), never a raw subject.

A session is claimed by its first write (`claim_session`): the row is inserted with the writer as owner,
or an existing row without owner takes the writer; whoever the row names afterwards is the owner, so two
subjects racing for one new session id end with exactly one owner. Groups, turns, assessment results and
summary versions are keyed by their session id (the sessions table's primary key), so their owner is their
session's: one column to keep right, not five.

Rows written before owners existed belong to `LEGACY_OWNER` (step 5 of `migrate.py`, schema version 3); no token
hashes to it, so only the admin token reads them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, Job, SessionRow, table_of, utcnow
from .txn import insert_ignore

__all__ = [
    "AudioObjectRow",
    "LEGACY_OWNER",
    "claim_session",
    "session_owner",
    "job_owner",
    "record_object",
    "object_owner",
    "job_may_touch_session",
]

LEGACY_OWNER = "legacy"  # rows older than ownership; not a hash, so no subject can ever match it

_S = table_of(SessionRow)


class AudioObjectRow(Base):
    """An audio object handed to (or made for) a subject: an STT upload, a presigned PUT key, a TTS output."""

    __tablename__ = "audio_objects"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def claim_session(store, session_id: str, owner: str) -> str | None:
    """Make `owner` the owner of `session_id` unless someone already is; return the session's owner now."""
    exists, current = session_owner(store, session_id)
    if exists and current is not None:
        return current  # the common case (every turn after the first): one read, no write transaction
    with store.engine.begin() as conn:
        now = utcnow()
        insert_ignore(
            conn, _S, {"session_id": session_id, "owner": owner, "created_at": now, "updated_at": now}, ["session_id"]
        )
        conn.execute(update(_S).where(_S.c.session_id == session_id, _S.c.owner.is_(None)).values(owner=owner))
        return conn.scalar(select(_S.c.owner).where(_S.c.session_id == session_id))


def session_owner(store, session_id: str) -> tuple[bool, str | None]:
    """(the session exists, its owner); an existing row without owner answers (True, None)."""
    with store.engine.connect() as conn:
        row = conn.execute(select(_S.c.owner).where(_S.c.session_id == session_id)).first()
    return (False, None) if row is None else (True, row.owner)


def job_owner(store, job_id: str) -> tuple[bool, str | None]:
    """(the job exists, its owner)."""
    with store.session() as s:
        row = s.execute(select(Job.owner).where(Job.id == job_id)).first()
    return (False, None) if row is None else (True, row.owner)


def record_object(store, key: str, owner: str | None) -> None:
    """Remember who may read audio object `key` (the first record wins: a key is never handed out twice)."""
    with store.engine.begin() as conn:
        insert_ignore(
            conn,
            table_of(AudioObjectRow),
            {"key": key, "owner": owner or LEGACY_OWNER, "created_at": utcnow()},
            ["key"],
        )


def object_owner(store, key: str) -> str | None:
    """The owner of audio object `key`; None when this API never handed it out."""
    with store.session() as s:
        return s.scalar(select(AudioObjectRow.owner).where(AudioObjectRow.key == key))


def job_may_touch_session(store, job) -> bool:
    """A worker's job acts for its owner only: True when the job's session (if any) has the job's owner.

    Rows without an owner count as `LEGACY_OWNER` on both sides, so a legacy job still runs on its legacy
    session, and a job whose row names another owner's session (a tampered or mis-redriven letter) does not.
    """
    if not job.session_id:
        return True
    exists, owner = session_owner(store, job.session_id)
    if not exists:
        return True  # nothing of anyone's to touch: the task finds no turns and fails on its own terms
    return (owner or LEGACY_OWNER) == (job.owner or LEGACY_OWNER)
