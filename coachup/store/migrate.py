"""Data migrations of an existing store, run once per schema version inside `create_store`'s schema lock.

`Base.metadata.create_all` creates missing tables (with their indexes) but never touches a table that
exists. A store created by an earlier version needs, in order:

1. the group states renamed to the front end's vocabulary (`open` -> `active`, `closed` -> `idle`);
2. the leftovers of the old ingest race repaired, so the new unique indexes can be built: a session with
   more than one active group keeps its newest one active and the others become idle (reason
   `superseded`, assessed by the scheduler's sweep like any idle group); turns numbered twice in one group
   are renumbered in arrival order and the group's turn count set to its number of turns;
3. the new indexes (one active group per session, unique `seq` per group, one finalize callback job
   per group) built, the old non-unique `seq` index dropped;
4. a `sessions` row for every session that has groups;
5. (version 3) an `owner` column on `sessions`, `jobs` and `dead_letters`, and every row that has none given
   the documented legacy owner (`owners.LEGACY_OWNER`, readable with the admin token only): data written
   before owners existed belongs to no user (`_owners_for_existing_rows`);
6. (version 4) at most one active assessment job per group: older duplicates left by the check-then-insert
   race are marked `failed` (error `duplicate`), so the partial unique index `uq_job_active_assessment`
   can be built (`_version_4`);
7. (version 5) the outbox columns on `jobs` (`published_at`, `publish_claimed_until`, `publish_attempts`,
   `publish_context`) and the index `ix_job_unpublished`; every row written before the outbox counts as
   published (its message was sent inline, or the requeue sweep's business), so the relay never sends it
   again (`_outbox_columns`, run before the other steps so their index builds cover the new index);
8. (version 6) the run-lease columns on `jobs` (`run_token`, `run_lease_until`, `coachup/store/runs.py`), NULL
   on every existing row: no run holds a lease (`_run_lease_columns`).

Each step is idempotent; `coachup_schema.version` records the last version applied so a process start
does not scan the tables again.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, func, insert, inspect, select, text, update

from .models import ACTIVE, IDLE, InteractionGroup, Job, SchemaMeta, SessionRow, TranscriptTurn, table_of, utcnow

__all__ = ["migrate", "SCHEMA_VERSION"]

# 1: before `sessions`, the unique indexes and active/idle; 2: before owners; 3: before one active assessment per group;
# 4: before the outbox columns; 5: before the run lease
SCHEMA_VERSION = 6
_OWNED_TABLES = ("sessions", "jobs", "dead_letters")

_G, _T, _S, _J = table_of(InteractionGroup), table_of(TranscriptTurn), table_of(SessionRow), table_of(Job)


def migrate(conn: Connection) -> None:
    """Bring the data of an existing store up to `SCHEMA_VERSION` (no-op when it already is)."""
    row = conn.execute(select(SchemaMeta.value).where(SchemaMeta.key == "version")).first()
    if row is not None and int(row.value) >= SCHEMA_VERSION:
        return
    _outbox_columns(conn)  # first: the index builds below cover `ix_job_unpublished`
    _run_lease_columns(conn)
    if row is None or int(row.value) < 2:
        _version_2(conn)
    if row is None or int(row.value) < 3:
        _owners_for_existing_rows(conn)
    _version_4(conn)  # builds every missing index of `jobs`, `ix_job_unpublished` included
    if row is None:
        conn.execute(insert(table_of(SchemaMeta)).values(key="version", value=str(SCHEMA_VERSION)))
    else:
        conn.execute(update(table_of(SchemaMeta)).where(SchemaMeta.key == "version").values(value=str(SCHEMA_VERSION)))


def _version_2(conn: Connection) -> None:
    conn.execute(update(_G).where(_G.c.state == "open").values(state=ACTIVE))
    conn.execute(update(_G).where(_G.c.state == "closed").values(state=IDLE))
    _one_active_group_per_session(conn)
    _renumber_duplicate_seqs(conn)
    _one_active_assessment_per_group(conn)  # before `_J.indexes` builds its partial unique index
    conn.execute(text("DROP INDEX IF EXISTS ix_turn_group_seq"))
    for index in (*_G.indexes, *_T.indexes, *_J.indexes):
        index.create(conn, checkfirst=True)
    _sessions_for_existing_groups(conn)


def _version_4(conn: Connection) -> None:
    """Step 6: the doubled active assessments repaired, then `uq_job_active_assessment` built."""
    _one_active_assessment_per_group(conn)
    for index in _J.indexes:
        index.create(conn, checkfirst=True)


_OUTBOX_COLUMNS = {
    "published_at": "TIMESTAMP WITH TIME ZONE",
    "publish_claimed_until": "TIMESTAMP WITH TIME ZONE",
    "publish_attempts": "INTEGER NOT NULL DEFAULT 0",
    "publish_context": "JSON",
}


def _outbox_columns(conn: Connection) -> None:
    """Step 7: the outbox columns where `create_all` could not add them; rows from before count as published."""
    columns = {c["name"] for c in inspect(conn).get_columns("jobs")}
    added = False
    for name, sql_type in _OUTBOX_COLUMNS.items():
        if name not in columns:
            if conn.dialect.name == "sqlite":
                sql_type = sql_type.replace(" WITH TIME ZONE", "")
            conn.execute(text(f"ALTER TABLE jobs ADD COLUMN {name} {sql_type}"))
            added = True
    if added:  # a store from before the outbox: its messages were published inline
        conn.execute(update(_J).where(_J.c.published_at.is_(None)).values(published_at=_J.c.created_at))


_RUN_LEASE_COLUMNS = {"run_token": "VARCHAR(64)", "run_lease_until": "TIMESTAMP WITH TIME ZONE"}


def _run_lease_columns(conn: Connection) -> None:
    """Step 8: the run-lease columns where `create_all` could not add them (NULL: nobody holds a run)."""
    columns = {c["name"] for c in inspect(conn).get_columns("jobs")}
    for name, sql_type in _RUN_LEASE_COLUMNS.items():
        if name not in columns:
            if conn.dialect.name == "sqlite":
                sql_type = sql_type.replace(" WITH TIME ZONE", "")
            conn.execute(text(f"ALTER TABLE jobs ADD COLUMN {name} {sql_type}"))


def _owners_for_existing_rows(conn: Connection) -> None:
    """Step 5: the `owner` column where `create_all` could not add it, then `legacy` on every row without one."""
    from .owners import LEGACY_OWNER

    for table in _OWNED_TABLES:
        columns = {c["name"] for c in inspect(conn).get_columns(table)}
        if "owner" not in columns:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN owner VARCHAR(64)"))
        conn.execute(text(f"UPDATE {table} SET owner = :legacy WHERE owner IS NULL"), {"legacy": LEGACY_OWNER})


def _one_active_group_per_session(conn: Connection) -> None:
    crowded = conn.execute(
        select(_G.c.session_id).where(_G.c.state == ACTIVE).group_by(_G.c.session_id).having(func.count() > 1)
    ).scalars()
    for session_id in list(crowded):
        ids = conn.execute(
            select(_G.c.id).where(_G.c.session_id == session_id, _G.c.state == ACTIVE).order_by(_G.c.id.desc())
        ).scalars()
        older = list(ids)[1:]
        conn.execute(
            update(_G).where(_G.c.id.in_(older)).values(state=IDLE, close_reason="superseded", closed_at=utcnow())
        )


def _one_active_assessment_per_group(conn: Connection) -> None:
    """Keep the newest active assessment job of a group; the others failed as duplicates (their work is the
    newest one's), so `uq_job_active_assessment` can be built on a store the old race left doubled."""
    active = and_(_J.c.kind == "assessment", _J.c.status.in_(("queued", "running")))
    doubled = conn.execute(
        select(_J.c.session_id, _J.c.group_id)
        .where(active)
        .group_by(_J.c.session_id, _J.c.group_id)
        .having(func.count() > 1)
    ).all()
    for session_id, group_id in doubled:
        ids = conn.execute(
            select(_J.c.id)
            .where(active, _J.c.session_id == session_id, _J.c.group_id == group_id)
            .order_by(_J.c.created_at.desc(), _J.c.id.desc())
        ).scalars()
        older = list(ids)[1:]
        conn.execute(
            update(_J).where(_J.c.id.in_(older)).values(status="failed", error_type="duplicate", updated_at=utcnow())
        )


def _renumber_duplicate_seqs(conn: Connection) -> None:
    doubled = conn.execute(
        select(_T.c.session_id, _T.c.group_id)
        .group_by(_T.c.session_id, _T.c.group_id, _T.c.seq)
        .having(func.count() > 1)
        .distinct()
    ).all()
    for session_id, group_id in doubled:
        ids = list(
            conn.execute(
                select(_T.c.id)
                .where(_T.c.session_id == session_id, _T.c.group_id == group_id)
                .order_by(_T.c.seq, _T.c.id)
            ).scalars()
        )
        # two passes: through negative numbers first, so no intermediate state repeats a seq
        for seq, turn_id in enumerate(ids):
            conn.execute(update(_T).where(_T.c.id == turn_id).values(seq=-1 - seq))
        conn.execute(
            update(_T).where(_T.c.session_id == session_id, _T.c.group_id == group_id).values(seq=-1 - _T.c.seq)
        )
        conn.execute(
            update(_G).where(_G.c.session_id == session_id, _G.c.group_id == group_id).values(turn_count=len(ids))
        )


def _sessions_for_existing_groups(conn: Connection) -> None:
    known = select(_S.c.session_id).where(_S.c.session_id == _G.c.session_id).exists()
    rows = conn.execute(
        select(_G.c.session_id, func.min(_G.c.created_at), func.max(_G.c.last_turn_at))
        .where(~known)
        .group_by(_G.c.session_id)
    ).all()
    if rows:
        conn.execute(
            insert(_S),
            [{"session_id": s, "created_at": c or utcnow(), "updated_at": u or utcnow()} for s, c, u in rows],
        )
