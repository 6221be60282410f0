"""Rolling session summaries, versioned: one row per version, and one claim per summary window.

Invariants live in the database, not in check-then-insert code:
- `uq_summary_version` (session, version): two writers that read version N both try to write N+1, exactly one
  succeeds; the loser reads again and decides whether anything is left to do. Versions never race or repeat.
- `summary_windows` (session, window) primary key: the job of one window of `SUMMARY_WINDOW_N` turns is
  queued once, however many API processes see that turn count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, String, Text, UniqueConstraint, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, Job, TranscriptTurn, utcnow
from .repo import _session_owner

__all__ = ["SessionSummaryRow", "SummaryWindowRow", "SummaryRecord", "SummaryStore", "MAX_TURNS_PER_REFRESH"]

MAX_TURNS_PER_REFRESH = 400  # one job summarises at most this many new turns; the next window takes the rest


class SessionSummaryRow(Base):
    """One version of a session's rolling summary. `turns_covered`: how many of the session's stored turns
    (in ingest order) the summary has taken in; a summary made from a request's messages keeps the count."""

    __tablename__ = "session_summaries"
    __table_args__ = (UniqueConstraint("session_id", "version", name="uq_summary_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    turns_covered: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(16))  # api | job
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class _WindowTaken(Exception):
    """Another request claimed the window first."""


class SummaryWindowRow(Base):
    """The summary job of one window (`window` = turn count // SUMMARY_WINDOW_N) was queued."""

    __tablename__ = "summary_windows"

    session_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    window: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class SummaryRecord:
    session_id: str
    version: int
    text: str
    turns_covered: int
    source: str
    updated_at: datetime

    @property
    def updated_at_ms(self) -> int:
        return int(self.updated_at.timestamp() * 1000)


def _record(row: SessionSummaryRow) -> SummaryRecord:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return SummaryRecord(row.session_id, row.version, row.text, row.turns_covered, row.source, created)


class SummaryStore:
    """Summary rows over a `coachup.store.Store` (its engine and sessions)."""

    def __init__(self, store) -> None:
        self._store = store

    def latest(self, session_id: str) -> SummaryRecord | None:
        with self._store.session() as s:
            row = s.scalar(
                select(SessionSummaryRow)
                .where(SessionSummaryRow.session_id == session_id)
                .order_by(SessionSummaryRow.version.desc())
                .limit(1)
            )
            return _record(row) if row else None

    def add_version(
        self,
        session_id: str,
        text: str,
        *,
        after: SummaryRecord | None,
        turns_covered: int,
        source: str,
        provider: str,
        model: str,
    ) -> SummaryRecord | None:
        """Write the version after `after` (1 when None); None when another writer took that version first."""
        row = SessionSummaryRow(
            session_id=session_id,
            version=(after.version if after else 0) + 1,
            text=text,
            turns_covered=turns_covered,
            source=source,
            provider=provider,
            model=model[:100],
        )
        try:
            with self._store.session() as s, s.begin():
                s.add(row)
                s.flush()
                return _record(row)
        except IntegrityError:
            return None

    # ---- the session's stored turns (written by ingest) ------------------------------------------------
    def turn_count(self, session_id: str) -> int:
        with self._store.session() as s:
            return (
                s.scalar(
                    select(func.count()).select_from(TranscriptTurn).where(TranscriptTurn.session_id == session_id)
                )
                or 0
            )

    def turns_after(self, session_id: str, covered: int, limit: int = MAX_TURNS_PER_REFRESH) -> list[tuple[str, str]]:
        """(role, content) of the session's turns after the first `covered`, in ingest order."""
        with self._store.session() as s:
            rows = s.execute(
                select(TranscriptTurn.role, TranscriptTurn.content)
                .where(TranscriptTurn.session_id == session_id)
                .order_by(TranscriptTurn.id)
                .offset(covered)
                .limit(limit)
            ).all()
        return [(role, content) for role, content in rows]

    # ---- one job per window ------------------------------------------------------------------------------
    def claim_window_with_job(
        self, session_id: str, window: int, job_id: str, *, request_id: str | None, params: dict, context: dict | None
    ) -> bool:
        """Claim `window` and write its `summary` job row (unpublished: the outbox relay sends it) in one
        transaction: True when this caller queued it, False when another request holds the window. Any other
        failure commits neither, so a window is never claimed without its job."""
        try:
            with self._store.session() as s, s.begin():
                s.add(SummaryWindowRow(session_id=session_id, window=window, job_id=job_id))
                try:
                    s.flush()
                except IntegrityError:
                    raise _WindowTaken from None
                owner = _session_owner(s, session_id)  # the job acts for the session's owner, as repo's jobs do
                s.add(
                    Job(
                        id=job_id,
                        kind="summary",
                        status="queued",
                        session_id=session_id,
                        request_id=request_id,
                        params=params,
                        owner=owner,
                        publish_context=context,
                    )
                )
            return True
        except _WindowTaken:
            return False
