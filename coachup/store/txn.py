"""The two transactions that need more than the driver's defaults: a session's write lock and a snapshot read.

- `session_locked(engine, session_id)`: every write of a session's turns runs inside it, one at a time per
  session. PostgreSQL: the session's row is inserted if missing and locked `FOR UPDATE` (other sessions run
  in parallel). SQLite: `BEGIN IMMEDIATE` takes the database's single write lock before the first read,
  so no other writer commits between what this transaction reads and what it writes.
- `snapshot(engine)`: several reads that must agree (a job's status and its summary). PostgreSQL:
  `REPEATABLE READ` (its default, READ COMMITTED, gives each statement a fresh snapshot). SQLite: an
  explicit `BEGIN`, so the reads share one WAL snapshot instead of running one by one in autocommit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, Table, select

from .models import SessionRow, table_of, utcnow

__all__ = ["session_locked", "snapshot", "insert_ignore"]

_S = table_of(SessionRow)


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
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction whose every read sees the same committed state."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN")
            yield conn
