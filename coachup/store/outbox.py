"""The outbox: a job row is its own "to publish" record, claimed and marked by the relay (`workers.relay`).

A request writes the job row (`published_at` NULL) in the same commit as whatever it records (the closing turn,
the inline transcript), answers, and wakes the relay. The relay:

1. `claim` the rows to publish: one conditional UPDATE (`published_at IS NULL`, status `queued`, no live
   lease) ... RETURNING sets `publish_claimed_until` and counts the attempt, so two relays (two API processes, the
   scheduler's pass) never publish one row inside the same lease;
2. publishes each with its stored request context (`publish_context`);
3. `mark_published` (`published_at` set: the row leaves the outbox; the relay marks a whole pass at once,
   `mark_all_published`) or, when the broker refused, `release` (the lease moved to the retry time, so no relay
   retries it sooner).

Each step is one UPDATE, atomic on its own: a relay pass runs them on one pooled connection in autocommit
(`connection`), so the pass pays one checkout and one round trip per statement.

A relay that dies holding a lease leaves the row to whoever claims it after `lease_s`. A publish that hangs
longer than the lease may be sent twice: every job kind is idempotent (`coachup.jobs`), and the lease is set
well above the publish bound. `backlog` is the pending count and the oldest pending row's age (the metrics).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, bindparam, func, or_, select, update

from .models import Job, utcnow
from .repo import Store

__all__ = [
    "OutboxRow",
    "connection",
    "claim",
    "mark_published",
    "mark_all_published",
    "release",
    "release_all",
    "backlog",
    "unpublished",
]


@dataclass(frozen=True)
class OutboxRow:
    """What the relay needs to publish one job's message."""

    id: str
    kind: str
    session_id: str | None
    group_id: str | None
    request_id: str | None
    created_at: datetime
    params: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


_PENDING = (Job.published_at.is_(None), Job.status == "queued")


def _free(now):
    return or_(Job.publish_claimed_until.is_(None), Job.publish_claimed_until < now)


@contextmanager
def connection(store: Store, conn: Connection | None = None) -> Iterator[Connection]:
    """One pooled connection in autocommit for a relay pass (`conn`, one this made, when given): every statement
    is a single UPDATE, atomic on its own, so a pass's claim and mark cost one round trip each instead of four
    (the pool's ping, BEGIN, the statement, COMMIT), and the pass checks out and pings once."""
    if conn is not None:
        yield conn
        return
    with store.engine.connect() as fresh:
        yield fresh.execution_options(isolation_level="AUTOCOMMIT")


@cache
def _claim_statement(by_ids: bool):
    """The claim UPDATE, built once (bound: now, until, limit, and ids when `by_ids`)."""
    now = bindparam("now", type_=Job.publish_claimed_until.type)
    candidates = select(Job.id).where(*_PENDING, _free(now)).order_by(Job.created_at).limit(bindparam("limit"))
    if by_ids:
        candidates = candidates.where(Job.id.in_(bindparam("ids", expanding=True)))
    # one conditional UPDATE over the oldest candidates: a row another relay claimed meanwhile fails the outer
    # condition (PostgreSQL re-checks it after waiting on that relay's lock) and is not returned
    return (
        update(Job)
        .where(Job.id.in_(candidates.scalar_subquery()), *_PENDING, _free(now))
        .values(publish_claimed_until=bindparam("until", type_=Job.publish_claimed_until.type))
        .values(publish_attempts=Job.publish_attempts + 1)
        .returning(
            Job.id,
            Job.kind,
            Job.session_id,
            Job.group_id,
            Job.request_id,
            Job.created_at,
            Job.params,
            Job.publish_context,
        )
    )


def claim(
    store: Store,
    *,
    lease_s: float,
    limit: int = 100,
    job_ids: list[str] | None = None,
    now: datetime | None = None,
    conn: Connection | None = None,
) -> list[OutboxRow]:
    """Claim up to `limit` unpublished rows (oldest first; only `job_ids` when given) for `lease_s` seconds."""
    if job_ids is not None and not job_ids:
        return []
    now = now or utcnow()
    params: dict[str, Any] = {"now": now, "until": now + timedelta(seconds=lease_s), "limit": limit}
    if job_ids is not None:
        params["ids"] = list(job_ids)
    with connection(store, conn) as c:
        won = c.execute(_claim_statement(job_ids is not None), params).all()
    rows = [
        OutboxRow(
            id=r.id,
            kind=r.kind,
            session_id=r.session_id,
            group_id=r.group_id,
            request_id=r.request_id,
            created_at=_aware(r.created_at),
            params=r.params or {},
            context=r.publish_context or {},
        )
        for r in won
    ]
    return sorted(rows, key=lambda r: r.created_at)


def mark_published(store: Store, job_id: str, *, now: datetime | None = None) -> bool:
    """The broker took the message: the row leaves the outbox. False when it had left already."""
    return mark_all_published(store, [job_id], now=now) == 1


_MARK = (
    update(Job)
    .where(Job.id.in_(bindparam("ids", expanding=True)), Job.published_at.is_(None))
    .values(published_at=bindparam("now", type_=Job.published_at.type), publish_claimed_until=None)
)
_RELEASE = (
    update(Job)
    .where(Job.id.in_(bindparam("ids", expanding=True)), Job.published_at.is_(None))
    .values(publish_claimed_until=bindparam("retry_at", type_=Job.publish_claimed_until.type))
)


def mark_all_published(
    store: Store, job_ids: list[str], *, now: datetime | None = None, conn: Connection | None = None
) -> int:
    """`mark_published` for every row of a relay pass in one UPDATE; how many left the outbox."""
    if not job_ids:
        return 0
    with connection(store, conn) as c:
        done = c.execute(_MARK, {"ids": list(job_ids), "now": now or utcnow()})
        return cast("CursorResult[Any]", done).rowcount


def release(store: Store, job_id: str, *, retry_at: datetime) -> None:
    """The broker refused: no relay claims the row again before `retry_at`."""
    release_all(store, [job_id], retry_at=retry_at)


def release_all(store: Store, job_ids: list[str], *, retry_at: datetime, conn: Connection | None = None) -> None:
    """`release` for the rest of a relay pass in one UPDATE."""
    if not job_ids:
        return
    with connection(store, conn) as c:
        c.execute(_RELEASE, {"ids": list(job_ids), "retry_at": retry_at})


def unpublished(store: Store, job_id: str) -> bool:
    """Has the job's message never been marked published (whatever its status)?"""
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(Job).where(Job.id == job_id, Job.published_at.is_(None))) == 1


def backlog(store: Store, *, now: datetime | None = None) -> tuple[int, float]:
    """(rows waiting to be published, age in seconds of the oldest; 0.0 when none)."""
    now = now or utcnow()
    with store.session() as s:
        count, oldest = s.execute(select(func.count(), func.min(Job.created_at)).where(*_PENDING)).one()
    age = max(0.0, (now - _aware(oldest)).total_seconds()) if oldest is not None else 0.0
    return int(count or 0), age
