"""The durable store (SQLAlchemy 2): SQLite by default, PostgreSQL via `COACHUP_DATABASE_URL`."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import create_engine, event, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from coachup.settings import normalize_database_url

from . import deadletters as _deadletters  # noqa: F401  (its tables join Base.metadata)
from . import idempotency as _idempotency  # noqa: F401  (its table joins Base.metadata)
from . import leases as _leases  # noqa: F401  (its table joins Base.metadata)
from . import owners as _owners  # noqa: F401  (its tables join Base.metadata)
from . import summaries as _summaries  # noqa: F401  (its tables join Base.metadata)
from .migrate import migrate
from .models import Base, SkillRow
from .repo import GroupConflict, GroupIdle, IngestOutcome, Store, TurnRecord, new_group_id

__all__ = ["Store", "IngestOutcome", "GroupIdle", "GroupConflict", "TurnRecord", "create_store", "new_group_id"]

_SCHEMA_LOCK_KEY = 0x636F6163  # "coac": serialises create_all across processes on PostgreSQL


def create_store(url: str, *, init_schema: bool = True, pre_ping: bool = True) -> Store:
    """Engine + schema (idempotent) + seeded skills catalogue. `pre_ping=False` only to test what a closed pooled
    connection does without the ping (the intake's retry)."""
    url = normalize_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        # a connection the server closed (a restart, a failover, an idle cut) is replaced before a statement meets
        # it: pinged at checkout when it sat in the pool over PING_IDLE_S (`_ping_when_idle`). Turned off once for
        # the intake's speed (issue 19), the ping's absence made every pooled connection after a PostgreSQL restart
        # fail one request or task (the database-down drill, tests/reliability/test_faults.py); the intake
        # transactions still retry once on a closed connection
        engine = create_engine(url, pool_size=5, max_overflow=5, connect_args={"connect_timeout": 3})
        if pre_ping:
            _ping_when_idle(engine)
    store = Store(engine)
    if init_schema:
        _init_schema(engine)
    return store


#: a pooled connection back in the pool for longer than this is pinged before it is lent again
PING_IDLE_S = 1.0
_clock = time.monotonic  # (a test steps its own)


def _ping_when_idle(engine) -> None:
    """SQLAlchemy's `pool_pre_ping`, but only for a connection that sat in the pool over `PING_IDLE_S`.

    Under load a connection comes back within milliseconds, and a ping per checkout was a PostgreSQL round trip
    per transaction (about 7% of an intake request's CPU). A restart or failover takes longer than a second, so a
    connection that lived through one has been idle that long and is pinged; a connection that fails its ping is
    dropped and the pool lends another (`DisconnectionError`). A statement that still meets a closed connection
    (a restart under a second) fails once, and the pool then renews every older connection."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn, record) -> None:
        record.info["coachup_idle_since"] = _clock()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, _proxy) -> None:
        since = record.info.get("coachup_idle_since")
        if since is None or _clock() - since <= PING_IDLE_S:  # just opened, or back in the pool a moment ago
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool drops it and lends another (or opens one)
            raise DisconnectionError(f"pooled connection failed its ping: {type(exc).__name__}") from exc


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the worker's writes
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _init_schema(engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
        Base.metadata.create_all(conn)
        migrate(conn)
        _seed_skills(conn)


def _seed_skills(conn) -> None:
    from coachup.assessment.skills import SKILLS  # the catalogue lives with the assessment domain

    known = set(conn.execute(select(SkillRow.id)).scalars())
    rows = [
        {
            "id": s.id,
            "title": s.title,
            "category": s.category,
            "description": s.description,
            "criteria": [{"id": c.id, "text": c.text} for c in s.criteria],
            "active": True,
        }
        for s in SKILLS
        if s.id not in known
    ]
    if rows:
        conn.execute(insert(SkillRow), rows)
