"""The two transactions that need more than the driver's defaults: a session's write lock and a snapshot read.

- `session_locked(engine, session_id)`: every write of a session's turns runs inside it, one at a time per
  session. PostgreSQL: the session's row is inserted if missing and locked `FOR UPDATE` (other sessions run
  in parallel). SQLite: `BEGIN IMMEDIATE` takes the database's single write lock before the first read,
  so no other writer commits between what this transaction reads and what it writes.
- `session_claimed(engine, session_id, owner=..., tracked=..., check_skills=...)`: the same lock for the intake
  routes, taken with what they used to do in transactions of their own before it: the session claimed for its
  first writer and checked against the caller (`SessionNotOwned`), its tracked skills set, the skill ids checked
  against the catalogue (`UnknownSkills`; against the process's copy of the active ids, `unknown_skills`). A new
  session costs one statement (`INSERT ... ON CONFLICT DO NOTHING RETURNING`, which also holds its lock);
  `LockedSession.created` tells the caller the session has no groups or turns yet, so it need not look for them.
- `snapshot(engine)`: several reads that must agree (a job's status and its summary). PostgreSQL:
  `REPEATABLE READ` (its default, READ COMMITTED, gives each statement a fresh snapshot). SQLite: an
  explicit `BEGIN`, so the reads share one WAL snapshot instead of running one by one in autocommit.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .models import SessionRow, SkillRow, table_of, utcnow

__all__ = [
    "session_locked",
    "session_claimed",
    "LockedSession",
    "SessionNotOwned",
    "UnknownSkills",
    "snapshot",
    "insert_ignore",
    "unknown_skills",
    "forget_catalogue",
]

_S = table_of(SessionRow)


class SessionNotOwned(Exception):
    """The session belongs to another owner (the routes answer 404, as for an unknown session)."""


class UnknownSkills(Exception):
    """Skill ids that name no active catalogue skill, in request order."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = ids


@dataclass(frozen=True)
class LockedSession:
    """The connection holding the session's lock; `created`: this transaction inserted the session row (so it
    has no groups and no turns); the session's owner and tracked skills as they stand in this transaction."""

    conn: Connection
    created: bool
    owner: str | None
    tracked_skills: tuple[str, ...] | None


# built once per dialect: building and cache-keying a statement costs more CPU than running it
def _claims(dialect_insert) -> dict[bool, Any]:
    base: dict[str, Any] = {"session_id": bindparam("sid"), "owner": bindparam("owner"), "created_at": bindparam("now")}
    base["updated_at"] = bindparam("now")
    out = {}
    for with_tracked in (False, True):
        values = (
            {**base, "tracked_skills": bindparam("tracked", type_=_S.c.tracked_skills.type)} if with_tracked else base
        )
        out[with_tracked] = (
            dialect_insert(_S)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["session_id"])
            .returning(_S.c.owner)
        )
    return out


_CLAIM = {"postgresql": _claims(pg_insert), "sqlite": _claims(sqlite_insert)}
_READ = select(_S.c.owner, _S.c.tracked_skills).where(_S.c.session_id == bindparam("sid"))
_READ_LOCKED = _READ.with_for_update()
_ACTIVE_SKILLS = select(SkillRow.id).where(SkillRow.active.is_(True))
#: how long a process trusts its copy of the active skill ids (the catalogue is seeded from code at start)
CATALOGUE_TTL_S = 30.0
_clock = time.monotonic  # (a test steps its own)
_catalogues: weakref.WeakKeyDictionary[Engine, tuple[float, frozenset[str]]] = weakref.WeakKeyDictionary()


def forget_catalogue(engine: Engine) -> None:
    """Drop this process's copy of the active skill ids (a skill was retired here: refuse it from now on)."""
    _catalogues.pop(engine, None)


def unknown_skills(conn: Connection, wanted: Sequence[str]) -> list[str]:
    """The ids of `wanted` that name no active catalogue skill, in order.

    The active ids are read once per engine and trusted for `CATALOGUE_TTL_S`: a request naming known skills costs
    no statement (it was a round trip per intake request). An id the copy lacks is looked up again at once, so a
    skill added to the catalogue is known at once; a skill retired by another process (`sync_skills`, which
    forgets its own copy) or by hand is accepted here up to 30 s longer."""
    engine, now = conn.engine, _clock()
    cached = _catalogues.get(engine)
    if cached is None or now - cached[0] > CATALOGUE_TTL_S or any(i not in cached[1] for i in wanted):
        cached = (now, frozenset(conn.scalars(_ACTIVE_SKILLS)))
        _catalogues[engine] = cached
    return [i for i in wanted if i not in cached[1]]


def insert_ignore(conn: Connection, table: Table, values: dict, keys: list[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO NOTHING, on SQLite and PostgreSQL alike."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).values(**values).on_conflict_do_nothing(index_elements=keys))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=keys))


@contextmanager
def session_locked(engine: Engine, session_id: str) -> Iterator[Connection]:
    """A write transaction that holds `session_id`'s lock until it commits (or rolls back on error)."""
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        now = utcnow()
        insert_ignore(conn, _S, {"session_id": session_id, "created_at": now, "updated_at": now}, ["session_id"])
        if conn.dialect.name != "sqlite":
            conn.execute(select(_S.c.session_id).where(_S.c.session_id == session_id).with_for_update())
        yield conn


@contextmanager
def session_claimed(
    engine: Engine,
    session_id: str,
    *,
    owner: str | None = None,
    admin: bool = False,
    tracked: Sequence[str] | None = None,
    check_skills: Sequence[str] | None = None,
) -> Iterator[LockedSession]:
    """`session_locked`, with the intake's checks in the same transaction (nothing is written when one fails).

    `check_skills`: raise `UnknownSkills` unless every id is an active catalogue skill. `owner`: the caller
    claims a session nobody owns yet (the first write claims it) and must own it otherwise, unless `admin`
    (`SessionNotOwned`). `tracked`: the session's tracked skills from now on (an empty list: the defaults).
    """
    with engine.connect() as conn, conn.begin():
        dialect = conn.dialect.name
        if dialect == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        if check_skills:
            wanted = list(dict.fromkeys(check_skills))
            unknown = unknown_skills(conn, wanted)
            if unknown:
                raise UnknownSkills(unknown)
        value = (list(dict.fromkeys(tracked)) or None) if tracked is not None else None
        params = {"sid": session_id, "owner": owner, "now": utcnow(), "tracked": value}
        claim = _CLAIM["postgresql" if dialect == "postgresql" else "sqlite"][value is not None]
        if conn.execute(claim, params).first() is not None:  # a new session, locked by its own insert
            yield LockedSession(conn, True, owner, tuple(value) if value else None)
            return
        row = conn.execute(_READ_LOCKED if dialect == "postgresql" else _READ, params).one()
        current, stored = row.owner, row.tracked_skills
        changes: dict = {}
        if owner is not None and current is None:  # a row nobody claimed yet (written without an owner)
            changes["owner"] = current = owner
        if owner is not None and current != owner and not admin:
            raise SessionNotOwned(session_id)
        if tracked is not None:
            changes.update(tracked_skills=value, updated_at=params["now"])
            stored = value
        if changes:
            conn.execute(update(_S).where(_S.c.session_id == session_id).values(**changes))
        yield LockedSession(conn, False, current, tuple(stored) if stored else None)


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction whose every read sees the same committed state."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")
            yield conn
