"""The intake's one transaction (`txn.session_claimed`): the caller's claim on the session, the skill check and the
tracked skills commit with the turns or not at all; and a pooled connection the server closed costs no request
(the engine no longer pings per checkout, so the intake retries once on a new connection)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from coachup.store import create_store
from coachup.store.batch import ingest_turns
from coachup.store.owners import session_owner
from coachup.store.txn import SessionNotOwned, UnknownSkills

TURNS = [("m0", "user", "hello", None), ("m1", "user", "thanks, bye", None)]


def _turn(store, session_id: str, message_id: str, **kw):
    return store.ingest_turn(
        session_id=session_id,
        message_id=message_id,
        role="user",
        content="goodbye",
        ts=None,
        group_id=None,
        end_reason="explicit",
        max_turns=50,
        assessment_job={"request_id": "r", "context": {}},
        **kw,
    )


def test_the_first_write_claims_the_session_and_another_owner_is_refused_with_nothing_written(store_url):
    store = create_store(store_url)
    first = _turn(store, "s1", "a", owner="alice")
    assert first.job_id and session_owner(store, "s1") == (True, "alice")
    assert store.get_job(first.job_id)["taskId"] == first.job_id  # the job row committed with the turn
    with pytest.raises(SessionNotOwned):
        _turn(store, "s1", "b", owner="bob")
    with pytest.raises(SessionNotOwned):
        ingest_turns(store, session_id="s1", group_id="g9", turns=TURNS, close_reason="api", job={}, owner="bob")
    assert store.latest_group_id("s1") == first.group_id and store.group_info("s1", "g9") is None
    # an admin acts across owners; the owner stays the first writer
    assert _turn(store, "s1", "c", owner="bob", admin=True).turn_count == 1
    assert session_owner(store, "s1") == (True, "alice")


def test_a_session_written_without_owner_is_claimed_by_its_next_writer(store_url):
    store = create_store(store_url)
    _turn(store, "s2", "a")  # a writer that claims nothing (the scheduler, a legacy path)
    assert session_owner(store, "s2") == (True, None)
    _turn(store, "s2", "b", owner="carol")
    assert session_owner(store, "s2") == (True, "carol")


def test_unknown_skills_write_nothing_and_known_ones_become_the_sessions_choice(store_url):
    store = create_store(store_url)
    with pytest.raises(UnknownSkills) as err:
        ingest_turns(
            store,
            session_id="s3",
            group_id="g1",
            turns=TURNS,
            close_reason="api",
            job={},
            owner="dave",
            tracked=["no-such-skill"],
            check_skills=["no-such-skill"],
        )
    assert err.value.ids == ["no-such-skill"] and session_owner(store, "s3") == (False, None)
    skill = store.engine.connect().execute(text("SELECT id FROM skills LIMIT 1")).scalar_one()
    result = ingest_turns(
        store,
        session_id="s3",
        group_id="g1",
        turns=TURNS,
        close_reason="api",
        job={"params": None},
        owner="dave",
        tracked=[skill, skill],
        check_skills=[skill],
    )
    assert store.tracked_skills("s3") == (skill,)
    assert store.get_job(result.job_id)["taskId"] == result.job_id
    with store.engine.connect() as conn:
        params, owner = conn.execute(text("SELECT params, owner FROM jobs WHERE id = :id"), {"id": result.job_id}).one()
    params = params if isinstance(params, dict) else __import__("json").loads(params)
    assert params == {"trackedSkills": [skill]} and owner == "dave"


def test_a_pooled_connection_the_server_closed_costs_no_ingest():
    from tests.support.services import PostgresDatabase

    pg = PostgresDatabase()
    try:
        store = create_store(pg.url, pre_ping=False)  # the ping would replace the connection first: test the retry
        _turn(store, "warm-session", "a")
        with store.engine.connect() as conn:  # the pool's one idle connection
            backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # the server closes it (a restart, an idle timeout, a failover): nothing pings it before the next use
        with create_store(pg.url, init_schema=False).engine.connect() as admin:
            assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend}).scalar_one()
        outcome = _turn(store, "after-restart", "a")  # the dead connection fails, the retry succeeds
        assert outcome.job_id and store.get_job(outcome.job_id) is not None
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != backend
        store.engine.dispose()
    finally:
        pg.drop()


def test_the_skills_check_reads_the_catalogue_once_and_again_for_an_id_it_lacks_or_after_30_s(store_url, monkeypatch):
    from sqlalchemy import event

    from coachup.store import txn

    store = create_store(store_url)
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda _c, _cur, sql, *_a: statements.append(sql))
    with store.engine.connect() as conn:
        skill = conn.execute(text("SELECT id FROM skills WHERE active ORDER BY id LIMIT 1")).scalar_one()
        statements.clear()
        assert txn.unknown_skills(conn, [skill]) == [] and len(statements) == 1  # the first check reads the catalogue
        assert txn.unknown_skills(conn, [skill, skill]) == [] and len(statements) == 1  # then trusts its copy

        # a skill added to the catalogue meanwhile: the copy lacks it, so it is read again at once
        conn.execute(
            text(
                "INSERT INTO skills (id, title, category, description, criteria, active)"
                " VALUES ('added-later', 'Added', 'clarity', 'd', '[]', :yes)"
            ),
            {"yes": True},
        )
        conn.commit()
        assert txn.unknown_skills(conn, ["added-later", "no-such-skill"]) == ["no-such-skill"]
        assert len(statements) == 3  # (the insert, and one read)

        # a skill deactivated by hand is accepted until the copy is 30 s old, then refused
        conn.execute(text("UPDATE skills SET active = :no WHERE id = 'added-later'"), {"no": False})
        conn.commit()
        assert txn.unknown_skills(conn, ["added-later"]) == []
        later = txn._clock() + txn.CATALOGUE_TTL_S + 1
        monkeypatch.setattr(txn, "_clock", lambda: later)
        assert txn.unknown_skills(conn, ["added-later"]) == ["added-later"]
    store.engine.dispose()


def test_a_pooled_connection_is_pinged_only_after_a_second_in_the_pool_and_replaced_when_its_backend_died(monkeypatch):
    import coachup.store as store_module
    from tests.support.services import PostgresDatabase

    pg = PostgresDatabase()
    try:
        store = create_store(pg.url)
        pings: list[object] = []
        ping = store.engine.dialect.do_ping
        monkeypatch.setattr(store.engine.dialect, "do_ping", lambda conn: (pings.append(conn), ping(conn))[1])

        def backend() -> int:
            with store.engine.connect() as conn:
                return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()

        first = backend()
        assert backend() == first and pings == []  # back in the pool a moment ago: lent again without a ping
        # its server process ends while it sits in the pool (a restart, an idle cut, a failover)
        with create_store(pg.url, init_schema=False).engine.connect() as admin:
            assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first}).scalar_one()
        later = store_module._clock() + store_module.PING_IDLE_S + 0.5
        monkeypatch.setattr(store_module, "_clock", lambda: later)
        # over a second in the pool: pinged, found dead, and another connection is lent; no statement fails
        assert backend() != first and len(pings) == 1
        store.engine.dispose()
    finally:
        pg.drop()
