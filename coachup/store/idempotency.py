"""Idempotency keys: the first answer to a request with a given `Idempotency-Key`, kept so a retry gets it again.

A row is written `pending` before the work starts (the primary key decides which of two concurrent requests
does the work) and `done` with the answer after. The key itself is never stored: `key_hash` is the keyed hash of
the route and the client's key. Answers that say "nothing was done" (5xx, 503 included) are not kept: the row
is removed, so the client's retry does the work.

Keys expire: `expire_keys` (run by the scheduler's `idempotency.expire` sweep) deletes rows older than
`COACHUP_IDEMPOTENCY_TTL_S` (default 24 h), `done` or still `pending` (a pending claim that old belongs to a
request that died, and would otherwise answer `idempotency_in_progress` for ever). A retry after that is a new
request.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import JSON, DateTime, Integer, String, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, utcnow

__all__ = ["IdempotencyRow", "claim_key", "finish_key", "forget_key", "expire_keys"]


class IdempotencyRow(Base):
    """One idempotency key: `pending` while its first request runs, then `done` with that request's answer."""

    __tablename__ = "idempotency_keys"

    key_hash: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    body: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


def claim_key(store, key_hash: str) -> IdempotencyRow | None:
    """None when this request claimed the key (do the work); else the existing row (replay it or wait)."""
    try:
        with store.session() as s, s.begin():
            s.add(IdempotencyRow(key_hash=key_hash, state="pending"))
        return None
    except IntegrityError:
        with store.session() as s:
            row = s.scalar(select(IdempotencyRow).where(IdempotencyRow.key_hash == key_hash))
            if row is None:  # removed between our insert and this read (its request answered 5xx): claim again
                return claim_key(store, key_hash)
            s.expunge(row)
            return row


def finish_key(store, key_hash: str, status_code: int, body: dict) -> None:
    with store.session() as s, s.begin():
        s.execute(
            update(IdempotencyRow)
            .where(IdempotencyRow.key_hash == key_hash)
            .values(state="done", status_code=status_code, body=body)
        )


def forget_key(store, key_hash: str) -> None:
    with store.session() as s, s.begin():
        s.execute(delete(IdempotencyRow).where(IdempotencyRow.key_hash == key_hash))


def expire_keys(store, ttl_s: float, *, batch: int = 1000) -> int:
    """Delete up to `batch` keys created more than `ttl_s` ago (oldest first); how many were deleted."""
    cutoff = utcnow() - timedelta(seconds=ttl_s)
    with store.session() as s, s.begin():
        old = (
            select(IdempotencyRow.key_hash)
            .where(IdempotencyRow.created_at < cutoff)
            .order_by(IdempotencyRow.created_at)
            .limit(batch)
        )
        return s.execute(delete(IdempotencyRow).where(IdempotencyRow.key_hash.in_(old.scalar_subquery()))).rowcount or 0
