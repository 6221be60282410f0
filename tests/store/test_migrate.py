"""A store written by the previous version is brought up to date when a process opens it (SQLite, PostgreSQL).

Given the old vocabulary (`open`/`closed`) and the leftovers of the old ingest race (two open groups in one
session, two turns sharing a `seq`), when `create_store` opens it, then the states read `active`/`idle`, one
group per session stays active, every group is numbered 0..n-1, every session has its row, and the new
unique indexes hold from then on.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.exc import IntegrityError

from coachup.settings import normalize_database_url
from coachup.store import create_store
from coachup.store.deadletters import DeadLetterRow
from coachup.store.migrate import SCHEMA_VERSION
from coachup.store.models import InteractionGroup, Job, SchemaMeta, SessionRow, TranscriptTurn
from coachup.store.owners import LEGACY_OWNER, claim_session


def _old_store(url: str) -> None:
    """The previous schema: no sessions table, no unique indexes, `open`/`closed`, raced data in it."""
    engine = create_engine(normalize_database_url(url))
    g, t = InteractionGroup.__table__, TranscriptTurn.__table__
    with engine.begin() as conn:
        g.create(conn, checkfirst=True)  # builds its indexes too: drop the new ones to look old
        t.create(conn, checkfirst=True)
        conn.execute(text("DROP INDEX uq_group_one_active"))
        conn.execute(text("DROP INDEX uq_turn_group_seq"))
        conn.execute(text("CREATE INDEX ix_turn_group_seq ON transcript_turns (session_id, group_id, seq)"))
        conn.execute(
            insert(g),
            [
                {"session_id": "s1", "group_id": "a", "state": "closed", "turn_count": 1},
                {"session_id": "s1", "group_id": "b", "state": "open", "turn_count": 1},
                {"session_id": "s1", "group_id": "c", "state": "open", "turn_count": 1},  # the race's second group
                {"session_id": "s2", "group_id": "d", "state": "open", "turn_count": 2},
            ],
        )
        conn.execute(
            insert(t),
            [
                {"session_id": "s1", "group_id": "a", "message_id": "m0", "seq": 0, "role": "user", "content": "x"},
                {"session_id": "s2", "group_id": "d", "message_id": "n0", "seq": 0, "role": "user", "content": "x"},
                {"session_id": "s2", "group_id": "d", "message_id": "n1", "seq": 0, "role": "user", "content": "y"},
                {"session_id": "s2", "group_id": "d", "message_id": "n2", "seq": 1, "role": "user", "content": "z"},
            ],
        )
    engine.dispose()


def test_an_old_store_is_migrated_once(store_url):
    _old_store(store_url)
    store = create_store(store_url)
    states = {g: store.group_info(s, g)["state"] for s, g in (("s1", "a"), ("s1", "b"), ("s1", "c"), ("s2", "d"))}
    assert states == {"a": "idle", "b": "idle", "c": "active", "d": "active"}
    assert store.group_info("s1", "b")["closeReason"] == "superseded"
    assert [(t.message_id, t.seq) for t in store.load_turns("s2", "d")] == [("n0", 0), ("n1", 1), ("n2", 2)]
    assert store.group_info("s2", "d")["turnCount"] == 3
    with store.session() as s:
        assert set(s.scalars(select(SessionRow.session_id))) == {"s1", "s2"}
        assert s.scalar(select(SchemaMeta.value).where(SchemaMeta.key == "version")) == str(SCHEMA_VERSION)
        # sessions that existed before owners belong to the legacy owner (step 5)
        assert set(s.scalars(select(SessionRow.owner))) == {LEGACY_OWNER}
    # the next turn continues the numbering, and the rules now hold in the database itself
    nxt = store.ingest_turn(
        session_id="s2",
        message_id="n3",
        role="user",
        content="w",
        ts=None,
        group_id=None,
        end_reason=None,
        max_turns=12,
    )
    assert (nxt.group_id, nxt.turn_count) == ("d", 4)
    with store.engine.begin() as conn, pytest.raises(IntegrityError):
        conn.execute(insert(InteractionGroup).values(session_id="s2", group_id="e", state="active", turn_count=0))
    create_store(store_url)  # idempotent: a second process start changes nothing
    assert store.group_info("s1", "c")["state"] == "active"
    store.engine.dispose()


def _version_2_store(url: str) -> None:
    """The schema of version 2: every table but no `owner` columns and no `audio_objects`; rows in it."""
    store = create_store(url)
    store.ingest_turn(
        session_id="s-old",
        message_id="m0",
        role="user",
        content="before owners",
        ts=None,
        group_id="g0",
        end_reason="explicit",
        max_turns=12,
    )
    store.create_job("assessment", session_id="s-old", group_id="g0", job_id="job-old")
    with store.engine.begin() as conn:
        conn.execute(
            insert(DeadLetterRow).values(
                id="job-old.0", task="assessments.run", reason="permanent", error_type="x", record={"id": "job-old.0"}
            )
        )
        for table in ("sessions", "jobs", "dead_letters"):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN owner"))
        conn.execute(text("DROP TABLE audio_objects"))
        conn.execute(text("UPDATE coachup_schema SET value = '2' WHERE key = 'version'"))
    store.engine.dispose()


def test_a_version_2_store_gets_owners_and_its_rows_the_legacy_owner(store_url):
    # Given a store written before owners existed
    _version_2_store(store_url)
    # When a process opens it (`create_store`, what `coachup db upgrade`, the API and the workers do)
    store = create_store(store_url)
    # Then every old row belongs to the legacy owner, the new table exists, and the version is current
    with store.session() as s:
        assert s.scalar(select(SessionRow.owner).where(SessionRow.session_id == "s-old")) == LEGACY_OWNER
        assert s.scalar(select(Job.owner).where(Job.id == "job-old")) == LEGACY_OWNER
        assert s.scalar(select(DeadLetterRow.owner).where(DeadLetterRow.id == "job-old.0")) == LEGACY_OWNER
        assert s.scalar(select(SchemaMeta.value).where(SchemaMeta.key == "version")) == str(SCHEMA_VERSION)
    # the legacy session cannot be claimed by a user; a new session can
    assert claim_session(store, "s-old", "ow:someone") == LEGACY_OWNER
    assert claim_session(store, "s-new", "ow:someone") == "ow:someone"
    create_store(store_url)  # idempotent: a second start changes nothing
    with store.session() as s:
        assert s.scalar(select(SessionRow.owner).where(SessionRow.session_id == "s-new")) == "ow:someone"
    store.engine.dispose()


def test_coachup_db_upgrade_runs_the_migration(store_url, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from coachup.cli import main

    _version_2_store(store_url)
    monkeypatch.setenv("COACHUP_DATABASE_URL", store_url)
    monkeypatch.setenv("COACHUP_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"schema version {SCHEMA_VERSION}" in result.output
    engine = create_engine(normalize_database_url(store_url))
    with engine.connect() as conn:
        assert conn.scalar(select(SessionRow.owner).where(SessionRow.session_id == "s-old")) == LEGACY_OWNER
        assert conn.scalar(select(SchemaMeta.value).where(SchemaMeta.key == "version")) == str(SCHEMA_VERSION)
    engine.dispose()


def test_doubled_active_assessments_of_a_version_2_store_keep_the_newest(store_url):
    """Given a version-2 store where the old check-then-insert race left two queued assessments of one group,
    when a process opens it, then the newest stays queued, the older one is failed as a duplicate, and a third
    active job of that group is refused by the database from then on."""
    from datetime import UTC, datetime, timedelta

    create_store(store_url).engine.dispose()
    engine = create_engine(normalize_database_url(store_url))
    j = Job.__table__
    old = datetime.now(UTC) - timedelta(minutes=5)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX uq_job_active_assessment"))
        conn.execute(text("UPDATE coachup_schema SET value = '2' WHERE key = 'version'"))
        conn.execute(
            insert(j),
            [
                {
                    "id": "older",
                    "kind": "assessment",
                    "status": "queued",
                    "session_id": "s",
                    "group_id": "g",
                    "attempts": 0,
                    "created_at": old,
                    "updated_at": old,
                },
                {
                    "id": "newer",
                    "kind": "assessment",
                    "status": "queued",
                    "session_id": "s",
                    "group_id": "g",
                    "attempts": 0,
                    "created_at": old + timedelta(seconds=1),
                    "updated_at": old,
                },
            ],
        )
    engine.dispose()
    store = create_store(store_url)
    assert store.get_job("newer")["status"] == "queued" and store.get_job("older")["status"] == "failed"
    assert store.create_assessment_job("s", "g", request_id=None, params={}) == ("newer", False)
    with store.engine.begin() as conn, pytest.raises(IntegrityError):
        conn.execute(insert(j).values(id="third", kind="assessment", status="running", session_id="s", group_id="g"))
    store.engine.dispose()


def test_a_version_4_store_gets_the_outbox_and_its_old_jobs_count_as_published(store_url):
    # Given a store written before the outbox: a job whose message was published inline, no outbox columns
    from coachup.store import outbox

    store = create_store(store_url)
    store.create_job("tts", job_id="job-v4", params={})
    with store.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_job_unpublished"))
        for column in ("published_at", "publish_claimed_until", "publish_attempts", "publish_context"):
            conn.execute(text(f"ALTER TABLE jobs DROP COLUMN {column}"))
        conn.execute(text("UPDATE coachup_schema SET value = '4' WHERE key = 'version'"))
    store.engine.dispose()
    # When a process opens it
    store = create_store(store_url)
    # Then the old job is not in the outbox (the relay never sends it again), and a new job is
    assert not outbox.unpublished(store, "job-v4")
    new = store.create_job("tts", params={}, context={"requestId": "r-1"})
    assert outbox.unpublished(store, new) and outbox.backlog(store)[0] == 1
    (row,) = outbox.claim(store, lease_s=60)
    assert (row.id, row.context) == (new, {"requestId": "r-1"})
    with store.session() as s:
        assert s.scalar(select(SchemaMeta.value).where(SchemaMeta.key == "version")) == str(SCHEMA_VERSION)
    store.engine.dispose()
