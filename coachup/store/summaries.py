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

from sqlalchemy import DateTime, Integer, String, Text, UniqueConstraint, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, TranscriptTurn, utcnow

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
    def claim_window(self, session_id: str, window: int, job_id: str) -> bool:
        """True when this caller is the one to queue `window`'s job."""
        try:
            with self._store.session() as s, s.begin():
                s.add(SummaryWindowRow(session_id=session_id, window=window, job_id=job_id))
            return True
        except IntegrityError:
            return False

    def release_window(self, session_id: str, window: int) -> None:
        """Forget a claim whose job never reached the broker (the next window catches up)."""
        with self._store.session() as s, s.begin():
            s.execute(
                delete(SummaryWindowRow).where(
                    SummaryWindowRow.session_id == session_id, SummaryWindowRow.window == window
                )
            )
