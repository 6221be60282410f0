"""The dead-letter queue of the Redis and embedded brokers, made durable in the store.

The worker writes a dying job's letter to the ledger (`dead_letter_ledger`, a pending marker) and then
publishes it as a message on the `deadletter` queue, both before it acks the job; the `deadletter.record`
task stores it in `dead_letters` and removes the marker in one transaction (acked after the commit). kombu
pops a message before it records it as unacked, so a record consumer that dies in between loses the message:
the marker stays, and the scheduler's sweep (`workers.deadletter.resend_lost_letters`) publishes it again
after `COACHUP_DEADLETTER_RESEND_AFTER_S`. `dead_letters` is what `coachup dlq` and the ops API read and
redrive. A third table counts redeliveries per job, to spot poison messages.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import JSON, DateTime, Integer, String, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from coachup.deadletters import DeadLetter, matches

from .models import Base, Job, utcnow

__all__ = ["DeadLetterRow", "LedgeredLetterRow", "RedeliveryRow", "StoreDeadLetters"]


class DeadLetterRow(Base):
    """One dead letter. `record` is `DeadLetter.to_dict()` (references only, never content)."""

    __tablename__ = "dead_letters"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    task: Mapped[str] = mapped_column(String(100), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    error_type: Mapped[str] = mapped_column(String(64))
    record: Mapped[dict] = mapped_column(JSON)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the dead job's owner (its job row)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class LedgeredLetterRow(Base):
    """A letter written before its `deadletter.record` message was published; gone once it is recorded."""

    __tablename__ = "dead_letter_ledger"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # the letter's id
    record: Mapped[dict] = mapped_column(JSON)  # `DeadLetter.to_dict()` (references only)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)  # last publish
    sends: Mapped[int] = mapped_column(Integer, default=1)


class RedeliveryRow(Base):
    """How often the broker delivered a job again after its worker died (key: `<task id>.<redrives>`)."""

    __tablename__ = "job_redeliveries"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class StoreDeadLetters:
    """`DeadLetterSource` over the store (Redis and embedded brokers)."""

    kind = "store"

    def __init__(self, store) -> None:
        self._store = store

    # ---- the ledger (the dying job's worker, then the sweep) --------------------------------------------
    def ledger(self, letter: DeadLetter) -> bool:
        """Write `letter`'s pending marker before its record message is published; False when it was there."""
        try:
            with self._store.session() as s, s.begin():
                s.add(LedgeredLetterRow(id=letter.id, record=letter.to_dict()))
            return True
        except IntegrityError:
            return False

    def unrecorded(self, older_than_s: float, *, limit: int = 200) -> builtins.list[DeadLetter]:
        """Ledgered letters last published more than `older_than_s` ago and still not recorded, oldest first."""
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        with self._store.session() as s:
            rows = s.scalars(
                select(LedgeredLetterRow)
                .where(LedgeredLetterRow.sent_at < cutoff)
                .order_by(LedgeredLetterRow.sent_at)
                .limit(limit)
            ).all()
            return [DeadLetter.from_dict(r.record) for r in rows]

    def claim_resend(self, letter_id: str, older_than_s: float) -> bool:
        """Claim one unrecorded letter for a resend (a conditional update: a second sweeper gets False)."""
        now = utcnow()
        with self._store.session() as s, s.begin():
            res = s.execute(
                update(LedgeredLetterRow)
                .where(
                    LedgeredLetterRow.id == letter_id,
                    LedgeredLetterRow.sent_at < now - timedelta(seconds=older_than_s),
                )
                .values(sent_at=now, sends=LedgeredLetterRow.sends + 1)
            )
            return bool(res.rowcount)

    def pending_letters(
        self, *, task: str | None = None, error: str | None = None, limit: int | None = None
    ) -> builtins.list[tuple[DeadLetter, datetime, int]]:
        """Ledgered letters not yet recorded, newest first: (letter, last publish of its record message, sends).
        `coachup dlq ls` shows them apart: they are not in `dead_letters` yet, so they cannot be redriven."""
        with self._store.session() as s:
            rows = s.scalars(
                select(LedgeredLetterRow).order_by(LedgeredLetterRow.created_at.desc(), LedgeredLetterRow.id.desc())
            ).all()
        out = []
        for row in rows:
            letter = DeadLetter.from_dict(row.record)
            if matches(letter, task=task, error=error):
                sent_at = row.sent_at if row.sent_at.tzinfo else row.sent_at.replace(tzinfo=utcnow().tzinfo)
                out.append((letter, sent_at, row.sends))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def pending(self) -> int:
        """Letters ledgered and not yet recorded."""
        with self._store.session() as s:
            return s.scalar(select(func.count()).select_from(LedgeredLetterRow)) or 0

    # ---- writing (the deadletter.record task) ---------------------------------------------------------
    def add(self, letter: DeadLetter, *, ledgered: bool = False) -> bool:
        """Store `letter` once and drop its ledger marker; False when it was already recorded.

        `ledgered`: the message says a marker was written before it was published. Then a missing marker
        means this letter was recorded already (a second copy: the sweep resent it while the first was only
        slow) and perhaps redriven since, so nothing is inserted.
        """
        try:
            with self._store.session() as s, s.begin():
                unmarked = s.execute(delete(LedgeredLetterRow).where(LedgeredLetterRow.id == letter.id)).rowcount
                if s.get(DeadLetterRow, letter.id) is not None or (ledgered and not unmarked):
                    return False
                s.add(
                    DeadLetterRow(
                        id=letter.id,
                        task=letter.task,
                        reason=letter.reason,
                        error_type=letter.error_type,
                        record=letter.to_dict(),
                        owner=s.scalar(select(Job.owner).where(Job.id == letter.task_id)),
                    )
                )
            return True
        except IntegrityError:
            return False

    def count_redelivery(self, key: str) -> int:
        """Add one redelivery for `key` and return the new count."""
        for _ in range(3):  # two workers may race on the first insert
            try:
                with self._store.session() as s, s.begin():
                    res = s.execute(
                        update(RedeliveryRow).where(RedeliveryRow.key == key).values(count=RedeliveryRow.count + 1)
                    )
                    if res.rowcount == 0:
                        s.add(RedeliveryRow(key=key, count=1))
                    s.flush()
                    return s.scalar(select(RedeliveryRow.count).where(RedeliveryRow.key == key))
            except IntegrityError:
                continue
        raise RuntimeError("could not count a redelivery")

    def forget_redeliveries(self, key: str) -> None:
        """Drop the counter of a delivery that finished (it ran to an outcome: not poison)."""
        with self._store.session() as s, s.begin():
            s.execute(delete(RedeliveryRow).where(RedeliveryRow.key == key))

    # ---- DeadLetterSource ------------------------------------------------------------------------------
    def list(
        self, *, task: str | None = None, error: str | None = None, limit: int | None = None
    ) -> builtins.list[DeadLetter]:
        with self._store.session() as s:
            rows = s.scalars(
                select(DeadLetterRow).order_by(DeadLetterRow.created_at.desc(), DeadLetterRow.id.desc())
            ).all()
        out = []
        for row in rows:
            letter = DeadLetter.from_dict(row.record)
            if matches(letter, task=task, error=error):
                out.append(letter)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def get(self, letter_id: str) -> DeadLetter | None:
        with self._store.session() as s:
            row = s.get(DeadLetterRow, letter_id)
            return DeadLetter.from_dict(row.record) if row else None

    def for_task(self, task_id: str) -> DeadLetter | None:
        """The newest letter of job `task_id` (ids are `<task id>.<redrives>`: a primary-key range read)."""
        with self._store.session() as s:
            rows = s.scalars(
                select(DeadLetterRow).where(DeadLetterRow.id > f"{task_id}.", DeadLetterRow.id < f"{task_id}/")
            ).all()
        letters = [DeadLetter.from_dict(r.record) for r in rows]
        letters = [x for x in letters if x.task_id == task_id]
        return max(letters, key=lambda x: x.redrives) if letters else None

    def remove(self, letter_id: str) -> bool:
        """Delete one letter (a redriven job reached a worker); True when it was still there."""
        with self._store.session() as s, s.begin():
            return bool(s.execute(delete(DeadLetterRow).where(DeadLetterRow.id == letter_id)).rowcount)

    def redrive(self, letters: Iterable[DeadLetter], send: Callable[[DeadLetter], None]) -> builtins.list[str]:
        done = []
        for letter in letters:
            send(letter)  # on the queue first ...
            self.remove(letter.id)  # ... then out of the DLQ (the worker also removes it when it starts)
            done.append(letter.id)
        return done

    def hold(self, letter: DeadLetter, reason: str) -> None:
        record = {**letter.to_dict(), "reason": reason}
        with self._store.session() as s, s.begin():
            s.execute(update(DeadLetterRow).where(DeadLetterRow.id == letter.id).values(reason=reason, record=record))

    def purge(self) -> int:
        with self._store.session() as s, s.begin():
            return s.execute(delete(DeadLetterRow)).rowcount or 0

    def depth(self) -> int:
        with self._store.session() as s:
            return s.scalar(select(func.count()).select_from(DeadLetterRow)) or 0
