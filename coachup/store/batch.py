"""Many turns of one group in one transaction: the API's inline transcript (`POST /assessments/run`).

`ingest_turns` stores the turns with the same rules as `Store.ingest_turn` (idempotent on `message_id` per
session, turns appended in order, a closed group refuses new turns) and then closes the group, in one
commit and a fixed number of statements whatever the number of turns: one query for the messages already
seen, one for the group, one multi-row insert, one group write. On PostgreSQL a commit is a WAL flush and
each statement a round trip, so this is most of the intake latency (docs/benchmarks.md). When the batch
closes the group and `job` is given, the assessment's job row is written in the same transaction.

The batch holds its session's lock (`txn.session_claimed`), like `ingest_turn`, so it never interleaves with
a single turn of the same session; a concurrent duplicate (IntegrityError) retries the whole batch once, and so
does a pooled connection the database closed (the engine does not ping per checkout: `coachup.store`). The
route's checks (the caller owns the session, the tracked skills exist) and the session's tracked skills are
in the same transaction; a session this batch creates has no turns or groups, so it writes without reading:
on PostgreSQL a new session's run is BEGIN, four INSERTs (session, group, turns, job) and COMMIT.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from .ingest import GroupConflict, GroupIdle, IngestOutcome
from .models import ACTIVE, IDLE, InteractionGroup, Job, TranscriptTurn, utcnow
from .repo import Store
from .txn import session_claimed

__all__ = ["ingest_turns", "InlineTurn", "BatchResult"]

InlineTurn = tuple[str, str, str, datetime | None]  # (message_id, role, content, ts)


@dataclass(frozen=True)
class BatchResult:
    """The per-turn outcomes, in input order, and the job row written with them (None: not written)."""

    outcomes: list[IngestOutcome]
    job_id: str | None = None


def ingest_turns(
    store: Store,
    *,
    session_id: str,
    group_id: str,
    turns: Iterable[InlineTurn],
    close_reason: str | None = None,
    job: dict | None = None,
    owner: str | None = None,
    admin: bool = False,
    tracked: list[str] | None = None,
    check_skills: list[str] | None = None,
) -> BatchResult:
    """Store `turns` in `group_id` and (when `close_reason`) close it, in one transaction.

    `job` (`request_id`, `params`, `context` of the job row): written in the same transaction when this batch is
    what closes the group; `BatchResult.job_id` says whether it was (its `params` None: the session's tracked
    skills). `owner`, `admin`, `tracked`, `check_skills`: `txn.session_claimed`'s. Raises `GroupIdle` (nothing
    stored) when the group exists, has ended, and the batch has a turn it has not seen; `GroupConflict` when the
    batch would open a second active group in the session; `SessionNotOwned`, `UnknownSkills`.
    """
    args = (store, session_id, group_id, list(turns), close_reason, job, (owner, admin, tracked, check_skills))
    try:
        return _once(*args)
    except IntegrityError:
        return _once(*args)
    except DBAPIError as exc:
        if not exc.connection_invalidated:  # a pooled connection the server closed: the pool is renewed
            raise
        return _once(*args)


_T, _G = cast(Table, TranscriptTurn.__table__), cast(Table, InteractionGroup.__table__)
# built once: constructing and cache-keying a statement costs more CPU per request than running it
_SEEN = select(_T.c.message_id, _T.c.group_id).where(
    _T.c.session_id == bindparam("sid"), _T.c.message_id.in_(bindparam("ids", expanding=True))
)
_GROUP = select(_G.c.id, _G.c.state, _G.c.turn_count, _G.c.close_reason).where(
    _G.c.session_id == bindparam("sid"), _G.c.group_id == bindparam("gid")
)
_ACTIVE = select(_G.c.group_id).where(_G.c.session_id == bindparam("sid"), _G.c.state == ACTIVE)
_OTHER_GROUPS = select(_G.c.group_id, _G.c.state, _G.c.turn_count, _G.c.close_reason).where(
    _G.c.session_id == bindparam("sid"), _G.c.group_id.in_(bindparam("gids", expanding=True))
)
_INSERT_GROUP, _INSERT_TURNS, _INSERT_JOB = insert(_G), insert(_T), insert(Job)


def _once(
    store: Store,
    session_id: str,
    group_id: str,
    turns: list[InlineTurn],
    close_reason: str | None,
    job: dict | None,
    claim: tuple,
) -> BatchResult:
    owner, admin, tracked, check_skills = claim
    # SQLAlchemy Core on one connection: the ORM's unit of work costs more CPU than these statements do
    with session_claimed(
        store.engine, session_id, owner=owner, admin=admin, tracked=tracked, check_skills=check_skills
    ) as locked:
        conn = locked.conn
        if locked.created:  # this transaction created the session: no turn or group of it exists
            seen, row = {}, None
        else:
            seen = dict(conn.execute(_SEEN, {"sid": session_id, "ids": list({t[0] for t in turns})}).all())
            row = conn.execute(_GROUP, {"sid": session_id, "gid": group_id}).first()
        state, count, reason = (row.state, row.turn_count, row.close_reason) if row else (ACTIVE, 0, None)
        others = {}
        elsewhere = {g for g in seen.values() if g != group_id}
        if elsewhere:  # a resent message that lives in another group reports that group, as ingest_turn does
            others = {
                r.group_id: r for r in conn.execute(_OTHER_GROUPS, {"sid": session_id, "gids": sorted(elsewhere)})
            }
        now = utcnow()
        rows, outcomes, taken = [], [], set()
        for message_id, role, content, ts in turns:
            if message_id in seen or message_id in taken:
                home = seen.get(message_id, group_id)
                if home != group_id and home in others:
                    o = others[home]
                    outcomes.append(IngestOutcome(True, home, o.turn_count, o.state, False, o.close_reason))
                else:
                    outcomes.append(IngestOutcome(True, group_id, count, state, False, reason))
                continue
            if state != ACTIVE:
                raise GroupIdle(group_id)
            rows.append(
                {
                    "session_id": session_id,
                    "group_id": group_id,
                    "message_id": message_id,
                    "seq": count,
                    "role": role,
                    "content": content,
                    "ts": ts,
                    "created_at": now,
                }
            )
            taken.add(message_id)
            count += 1
            outcomes.append(IngestOutcome(False, group_id, count, state, False, None))
        if row is None and not rows:  # every message lives in other groups: there is no group to write
            return BatchResult(outcomes)
        closing = bool(close_reason) and state == ACTIVE
        if row is None and not closing and not locked.created:
            active = conn.execute(_ACTIVE, {"sid": session_id}).first()
            if active is not None:
                raise GroupConflict(active.group_id)
        if row is None:
            conn.execute(
                _INSERT_GROUP,
                {
                    "session_id": session_id,
                    "group_id": group_id,
                    "state": IDLE if closing else ACTIVE,
                    "turn_count": count,
                    "close_reason": close_reason if closing else None,
                    "created_at": now,
                    "last_turn_at": now,
                    "closed_at": now if closing else None,
                },
            )
        elif rows or closing:
            values = {"turn_count": count}
            if rows:
                values["last_turn_at"] = now
            if closing:
                values.update(state=IDLE, close_reason=close_reason, closed_at=now)
            conn.execute(update(_G).where(_G.c.id == row.id, _G.c.state == ACTIVE).values(**values))
        if rows:
            conn.execute(_INSERT_TURNS, rows)
        job_id = None
        if closing and job is not None:
            job_id = str(uuid.uuid4())
            params = job.get("params")
            conn.execute(
                _INSERT_JOB,
                {
                    "id": job_id,
                    "kind": "assessment",
                    "status": "queued",
                    "session_id": session_id,
                    "group_id": group_id,
                    "attempts": 0,
                    "request_id": job.get("request_id"),
                    "params": params if params is not None else {"trackedSkills": list(locked.tracked_skills or [])},
                    "publish_attempts": 0,
                    "publish_context": job.get("context"),  # unpublished: the outbox relay sends it
                    "owner": locked.owner,  # the session's, read (or claimed) under its lock
                    "created_at": now,
                    "updated_at": now,
                },
            )
        return BatchResult(outcomes, job_id)
