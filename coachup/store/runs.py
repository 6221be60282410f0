"""The run lease: one delivery of a job's message at a time does the job's work (issue 16, "never doubled").

A broker can hand out two copies of one message: a publish that timed out against a hung Redis and was sent
again (redis-py's `retry_on_timeout`, kombu's publish retry), the outbox relay resending after its lease ran
out, the requeue sweep or the pop-window watch republishing a message it could not see. Every job kind is
idempotent for its *result* (a unique index, a done check), but two copies running at once would both call
the provider (paid LLM and speech calls) before either stores anything.

So a task claims its job row before its provider work (`workers.base.CoachupTask.begin_run`):

- `claim`: one conditional UPDATE. It succeeds when the job is not `done` and nobody else holds a live lease
  (no token, an expired `run_lease_until`, or this same token); it sets `status = running`, counts the
  attempt and sets `run_token` and `run_lease_until = now + lease_s`. Atomic on SQLite and PostgreSQL alike
  (PostgreSQL re-checks the condition after waiting on a concurrent writer's row lock), so of two copies
  claiming at once exactly one wins.
- A copy that loses learns why (`RunClaim`): the job is `done` (nothing left to do) or another delivery holds
  the lease for `remaining_s` more seconds (the worker defers the copy; it never drops it, because the holder
  may have been killed right after claiming: then its lease runs out and the deferred copy claims and runs).
- `release`: the holder gives the lease up when it finishes, fails or retries (only its own token).

The lease lasts at least the task's hard time limit, so a live holder never loses it to a copy; expiry compares
the worker hosts' clocks (keep them NTP-synchronised, as for `coachup.store.leases`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update

from .models import Job, utcnow
from .repo import Store

__all__ = ["RunClaim", "claim", "release", "lease_of"]


@dataclass(frozen=True)
class RunClaim:
    """The outcome of one claim: `claimed`, else `done` (the job finished) or another run's `remaining_s`."""

    claimed: bool
    done: bool = False
    remaining_s: float = 0.0
    missing: bool = False  # no such job row
    taken_over: bool = False  # claimed from a holder `dead` said is gone (its lease had not run out)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def claim(
    store: Store,
    job_id: str,
    token: str,
    *,
    lease_s: float,
    now: datetime | None = None,
    dead: Callable[[str], bool] | None = None,
) -> RunClaim:
    """Claim job `job_id`'s run for `token` until now + `lease_s` (see the module docstring).

    `dead(holder_token)`, when given, says whether the live lease's holder is known to be gone (a pool child
    SIGKILLed on this host): then the claim takes the lease over at once, conditional on that same holder
    still holding it, instead of deferring until the lease runs out."""
    now = now or utcnow()
    free = or_(
        Job.run_token.is_(None), Job.run_lease_until.is_(None), Job.run_lease_until < now, Job.run_token == token
    )
    if _take(store, job_id, token, lease_s, now, free):
        return RunClaim(claimed=True)
    with store.session() as s:
        row = s.execute(select(Job.status, Job.run_lease_until, Job.run_token).where(Job.id == job_id)).first()
    if row is None:
        return RunClaim(claimed=False, missing=True)
    if row.status == "done":
        return RunClaim(claimed=False, done=True)
    if dead is not None and row.run_token is not None and dead(row.run_token):
        if _take(store, job_id, token, lease_s, now, Job.run_token == row.run_token):
            return RunClaim(claimed=True, taken_over=True)
    until = _aware(row.run_lease_until) if row.run_lease_until is not None else now
    # the holder released or its lease ran out between the UPDATE and this read: claim again at once (0 s)
    return RunClaim(claimed=False, remaining_s=max(0.0, (until - now).total_seconds()))


def _take(store: Store, job_id: str, token: str, lease_s: float, now: datetime, condition) -> bool:
    """One conditional UPDATE: the job (not done, `condition` holding) becomes `running` under `token`."""
    with store.session() as s, s.begin():
        won = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status != "done", condition)
            .values(
                status="running",
                updated_at=now,
                error_type=None,
                error_message=None,
                attempts=Job.attempts + 1,
                run_token=token,
                run_lease_until=now + timedelta(seconds=lease_s),
            )
        )
        return cast("CursorResult[Any]", won).rowcount == 1


def release(store: Store, job_id: str, token: str) -> bool:
    """Give up `token`'s lease on `job_id` (a no-op when another run holds it now); True when it was held."""
    with store.session() as s, s.begin():
        done = s.execute(
            update(Job).where(Job.id == job_id, Job.run_token == token).values(run_token=None, run_lease_until=None)
        )
        return cast("CursorResult[Any]", done).rowcount == 1


def lease_of(store: Store, job_id: str) -> tuple[str | None, datetime | None]:
    """(run_token, run_lease_until) of `job_id` as stored (None, None when free or missing)."""
    with store.session() as s:
        row = s.execute(select(Job.run_token, Job.run_lease_until).where(Job.id == job_id)).first()
    if row is None:
        return None, None
    return row.run_token, _aware(row.run_lease_until) if row.run_lease_until is not None else None
