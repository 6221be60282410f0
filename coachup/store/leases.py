"""Leases: one holder of a named role at a time, with an expiry, kept in the store (SQLite and PostgreSQL alike).

Why: two schedulers (a second `coachup beat`, a second `make run`) each sent every periodic task, so every
sweep ran twice and raced itself. The scheduler now holds the `scheduler` lease: it renews it every tick, and a
second one finds it held and stays inert until the holder stops renewing for `ttl` seconds.

Taking and renewing is one conditional UPDATE (holder is me, or the lease has expired), or the first INSERT; both
are atomic on both databases, so no read-then-write race. Expiry compares the clocks of the hosts involved:
keep them NTP-synchronised (a skew below the ttl is harmless).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import DateTime, String, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, utcnow

__all__ = ["LeaseRow", "hold_lease", "release_lease"]


class LeaseRow(Base):
    """Who holds a role (`name`) and until when."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def hold_lease(store, name: str, holder: str, ttl_s: float) -> bool:
    """Take or renew `name` for `holder` until now + `ttl_s`; False while someone else holds it unexpired."""
    now = utcnow()
    until = now + timedelta(seconds=ttl_s)
    with store.session() as s, s.begin():
        taken = s.execute(
            update(LeaseRow)
            .where(LeaseRow.name == name, or_(LeaseRow.holder == holder, LeaseRow.expires_at < now))
            .values(holder=holder, expires_at=until)
        ).rowcount
        if taken:
            return True
    try:
        with store.session() as s, s.begin():
            s.add(LeaseRow(name=name, holder=holder, expires_at=until))
        return True
    except IntegrityError:  # the row exists and is someone else's, unexpired
        return False


def release_lease(store, name: str, holder: str) -> None:
    """Give `name` up at once (a clean stop), so a standby takes over on its next tick instead of after the ttl."""
    with store.session() as s, s.begin():
        s.execute(update(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder).values(expires_at=utcnow()))
