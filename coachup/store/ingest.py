"""One transcript turn into its session's active group, written under the session's lock.

Everything a turn decides (is it a resend, which group, which `seq`, does the group end) is read and written
in one transaction that holds the session's lock (`txn.session_locked`), so any number of turns of one
session arriving at once are written one after another: they land in one group, numbered 0, 1, 2, ...
without gap or repeat, and a closing turn can only close the group after the turns before it are written
(a turn that arrives after it opens the next group). The database holds the same rules on its own: one
`active` group per session and one turn per `seq` are unique indexes.

A turn that names a new `groupId` while another group of the session is active starts that group and ends
the other one (`superseded`), in the same transaction; the outcome names it so its assessment is queued.

The transactional outbox: given `assessment_job`, the assessment job row of every group this turn ends (its
own, the superseded one) is written in the same transaction as the turn, unpublished (`coachup.store.outbox`),
so a committed closing turn always has its job and the relay publishes it whatever the broker is doing. A
group that has an active assessment job already keeps it (`uq_job_active_assessment`: ON CONFLICT DO NOTHING).

The closing-cue rule (CONTRACTS.md §2): a closing cue never ends a group that holds no user speech yet, so
an assistant's greeting ("Hi! Good luck today") cannot close an empty interaction. Max turns and an
explicit end always close.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, exists, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError

from .models import ACTIVE, IDLE, InteractionGroup, Job, SessionRow, TranscriptTurn, table_of, utcnow
from .txn import session_claimed

__all__ = ["ingest_turn", "IngestOutcome", "GroupIdle", "GroupConflict", "new_group_id", "remember_tracked"]

CLOSING_CUE = "closing_cue"


class GroupIdle(Exception):
    """A turn was sent to a group whose interaction has ended."""


class GroupConflict(Exception):
    """A batch of turns would open a second active group in its session (`batch.ingest_turns`)."""

    def __init__(self, active_group_id: str) -> None:
        super().__init__(active_group_id)
        self.active_group_id = active_group_id


@dataclass(frozen=True)
class IngestOutcome:
    """What one turn did: `state` is the group's (`active` | `idle`) after it; `tracked_skills` the session's;
    `superseded` the group this turn ended by naming a new one."""

    deduped: bool
    group_id: str
    turn_count: int
    state: str
    closed_now: bool
    close_reason: str | None
    tracked_skills: tuple[str, ...] | None = None
    superseded: str | None = None
    job_id: str | None = None  # the group's assessment job written (or found) with this turn
    superseded_job_id: str | None = None  # the superseded group's
    job_created: bool = False  # this turn wrote `job_id`
    session_turns: int | None = None  # the session's stored turns, when known without a query (a new session)


def new_group_id() -> str:
    return "grp_" + uuid.uuid4().hex[:16]


_T, _G, _S = table_of(TranscriptTurn), table_of(InteractionGroup), table_of(SessionRow)
_SEEN = select(_T.c.group_id).where(_T.c.session_id == bindparam("sid"), _T.c.message_id == bindparam("mid"))
_GROUP = select(_G).where(_G.c.session_id == bindparam("sid"), _G.c.group_id == bindparam("gid"))
_ACTIVE = select(_G).where(_G.c.session_id == bindparam("sid"), _G.c.state == ACTIVE)
_USER_SPOKE = select(
    exists().where(_T.c.session_id == bindparam("sid"), _T.c.group_id == bindparam("gid"), _T.c.role == "user")
)


def ingest_turn(
    engine: Engine,
    *,
    session_id: str,
    message_id: str,
    role: str,
    content: str,
    ts: datetime | None,
    group_id: str | None,
    end_reason: str | None,
    max_turns: int,
    tracked_skills: list[str] | None = None,
    assessment_job: dict | None = None,
    owner: str | None = None,
    admin: bool = False,
    check_skills: list[str] | None = None,
) -> IngestOutcome:
    """Store one turn once; open or reuse the session's active group; end it when a rule fires.

    `end_reason`: `explicit`, `closing_cue` or None. `tracked_skills` (skill ids), when given, become the
    session's tracked skills (an empty list goes back to the defaults). `assessment_job` (`request_id`,
    `context` of the job row): the assessment job of a group this turn ends is written in the same
    transaction. `owner`, `admin`, `check_skills`: the route's checks, in the same transaction
    (`txn.session_claimed`: `SessionNotOwned`, `UnknownSkills`). Raises `GroupIdle` for a turn sent to an
    ended group.
    """
    args = (session_id, message_id, role, content, ts, group_id, end_reason, max_turns, tracked_skills, assessment_job)
    claim = (owner, admin, check_skills)
    try:
        return _ingest(engine, claim, *args)
    except IntegrityError:  # a session row created by a concurrent first turn: the lock orders us now
        return _ingest(engine, claim, *args)
    except DBAPIError as exc:
        if not exc.connection_invalidated:  # a pooled connection the server closed: the pool is renewed
            raise
        return _ingest(engine, claim, *args)


def _ingest(
    engine, claim, session_id, message_id, role, content, ts, group_id, end_reason, max_turns, tracked_skills, job
) -> IngestOutcome:
    owner, admin, check_skills = claim
    with session_claimed(
        engine, session_id, owner=owner, admin=admin, tracked=tracked_skills, check_skills=check_skills
    ) as locked:
        conn, tracked = locked.conn, locked.tracked_skills
        group = superseded = None
        if not locked.created:  # a session this transaction created has no turns and no groups to look for
            seen = conn.execute(_SEEN, {"sid": session_id, "mid": message_id}).first()
            if seen is not None:
                g = conn.execute(_GROUP, {"sid": session_id, "gid": seen.group_id}).one()
                return IngestOutcome(True, g.group_id, g.turn_count, g.state, False, g.close_reason, tracked)
        now = utcnow()
        if not locked.created:
            group, superseded = _target_group(conn, session_id, group_id, now)
        turn = {
            "session_id": session_id,
            "message_id": message_id,
            "role": role,
            "content": content,
            "ts": ts,
            "created_at": now,
        }
        if group is None:
            # a new group whose one turn is this one: decide its end first and write the group once
            gid, count = group_id or new_group_id(), 1
            reason = end_reason
            if reason == CLOSING_CUE and role != "user":
                reason = None  # a closing cue in a group with no user speech yet (a greeting) ends nothing
            reason = reason or ("max_turns" if count >= max_turns else None)
            group_row = {"session_id": session_id, "group_id": gid, "turn_count": count, "created_at": now}
            group_row.update(state=IDLE if reason else ACTIVE, last_turn_at=now)
            group_row.update(close_reason=reason, closed_at=now if reason else None)
            conn.execute(_INSERT_GROUP, group_row)
            conn.execute(_INSERT_TURN, {**turn, "group_id": gid, "seq": 0})
        elif group.state != ACTIVE:
            raise GroupIdle(group.group_id)
        else:
            gid, seq = group.group_id, group.turn_count
            conn.execute(_INSERT_TURN, {**turn, "group_id": gid, "seq": seq})
            reason = end_reason
            if (
                reason == CLOSING_CUE
                and role != "user"
                and not conn.scalar(_USER_SPOKE, {"sid": session_id, "gid": gid})
            ):
                reason = None  # a closing cue in a group with no user speech yet (a greeting) ends nothing
            count = seq + 1
            reason = reason or ("max_turns" if count >= max_turns else None)
            values: dict = {"turn_count": count, "last_turn_at": now}
            if reason:
                values.update(state=IDLE, close_reason=reason, closed_at=now)
            written = conn.execute(update(_G).where(_G.c.id == group.id, _G.c.turn_count == seq).values(**values))
            if written.rowcount != 1:  # impossible under the lock; never commit a turn count that disagrees
                raise RuntimeError("interaction group changed under the session lock")
        state = IDLE if reason else ACTIVE
        job_id = superseded_job = None
        job_created = False
        if job is not None and reason:
            job_id, job_created = write_assessment_job(conn, session_id, gid, job, tracked, now, locked.owner)
        if job is not None and superseded:
            superseded_job, _ = write_assessment_job(conn, session_id, superseded, job, tracked, now, locked.owner)
        return IngestOutcome(
            False,
            gid,
            count,
            state,
            bool(reason),
            reason,
            tracked,
            superseded,
            job_id,
            superseded_job,
            job_created,
            1 if locked.created else None,
        )


_INSERT_GROUP, _INSERT_TURN = insert(_G), insert(_T)


_J = table_of(Job)
_ACTIVE_JOB = select(_J.c.id).where(
    _J.c.kind == "assessment",
    _J.c.session_id == bindparam("sid"),
    _J.c.group_id == bindparam("gid"),
    _J.c.status.in_(("queued", "running")),
)


_INSERT_JOB = {
    "postgresql": pg_insert(_J).on_conflict_do_nothing().returning(_J.c.id),
    "sqlite": sqlite_insert(_J).on_conflict_do_nothing().returning(_J.c.id),
}
_UNREAD = object()


def write_assessment_job(
    conn: Connection,
    session_id: str,
    group_id: str,
    job: dict,
    tracked: tuple[str, ...] | None,
    now: datetime,
    owner: object = _UNREAD,
) -> tuple[str, bool]:
    """(job id, written now?) of the group's assessment, in the caller's transaction: a new unpublished row, or
    the group's active job when it has one (the partial unique index decides: ON CONFLICT DO NOTHING).

    `owner`: the session's owner when the caller read it under the lock (else it is read here)."""
    job_id = str(uuid.uuid4())
    values = {
        "id": job_id,
        "kind": "assessment",
        "status": "queued",
        "session_id": session_id,
        "group_id": group_id,
        "attempts": 0,
        "publish_attempts": 0,
        "request_id": job.get("request_id"),
        "params": job.get("params") or {"trackedSkills": list(tracked or [])},
        "publish_context": job.get("context"),
        "owner": (conn.scalar(select(_S.c.owner).where(_S.c.session_id == session_id)) if owner is _UNREAD else owner),
        "created_at": now,
        "updated_at": now,
    }
    stmt = _INSERT_JOB["postgresql" if conn.dialect.name == "postgresql" else "sqlite"]
    if conn.execute(stmt, values).first() is not None:  # RETURNING: rowcount is not reliable on every driver here
        return job_id, True
    existing = conn.scalar(_ACTIVE_JOB, {"sid": session_id, "gid": group_id})
    if existing is None:  # the conflict was not the active-assessment index: never hide it
        raise RuntimeError("assessment job insert conflicted with no active job")
    return existing, False


def _target_group(conn: Connection, session_id: str, group_id: str | None, now):
    """(the named group, else the session's active group, or None: open a new one; the group it superseded)."""
    if group_id is None:
        return conn.execute(_ACTIVE, {"sid": session_id}).first(), None
    named = conn.execute(_GROUP, {"sid": session_id, "gid": group_id}).first()
    if named is not None:
        return named, None
    active = conn.execute(_ACTIVE, {"sid": session_id}).first()
    if active is None:
        return None, None
    # the client starts a new interaction by name: the one still going on has ended
    conn.execute(update(_G).where(_G.c.id == active.id).values(state=IDLE, close_reason="superseded", closed_at=now))
    return None, active.group_id


def remember_tracked(conn: Connection, session_id: str, skills: list[str] | None) -> tuple[str, ...] | None:
    """Store `skills` as the session's tracked skills when given; return what the session tracks now.

    Runs inside `session_locked` (the session row exists). None means the session tracks the defaults.
    """
    if skills is None:
        stored = conn.scalar(select(_S.c.tracked_skills).where(_S.c.session_id == session_id))
        return tuple(stored) if stored else None
    value = list(dict.fromkeys(skills)) or None
    conn.execute(update(_S).where(_S.c.session_id == session_id).values(tracked_skills=value, updated_at=utcnow()))
    return tuple(value) if value else None
