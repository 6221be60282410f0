"""A summary window's claim and its job row are one transaction (issue 16 gap): when the store refuses the job
row (and, as a store going down would, the clean-up of the claim), no window is left claimed without a job.
Real stores (SQLite and PostgreSQL); the refusals are database triggers, not patched methods."""

from __future__ import annotations

import uuid

from sqlalchemy import text

_REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs BEGIN SELECT RAISE(ABORT, 'jobs refused'); END",
        "CREATE TRIGGER keep_windows BEFORE DELETE ON summary_windows BEGIN SELECT RAISE(ABORT, 'refused'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_write() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_write()",
        "CREATE TRIGGER keep_windows BEFORE DELETE ON summary_windows FOR EACH ROW EXECUTE FUNCTION refuse_write()",
    ],
}
_ALLOW = {
    "sqlite": ["DROP TRIGGER refuse_jobs", "DROP TRIGGER keep_windows"],
    "postgresql": [
        "DROP TRIGGER refuse_jobs ON jobs",
        "DROP TRIGGER keep_windows ON summary_windows",
        "DROP FUNCTION refuse_write()",
    ],
}


def _ddl(store, statements: list[str]) -> None:
    with store.engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql))


def _count(store, sql: str, session_id: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text(sql), {"s": session_id}).scalar()


def test_a_window_whose_job_row_fails_is_not_left_claimed(offline_settings, store_url):
    from web import create_app

    app = create_app(offline_settings.replace(database_url=store_url, summary_window_n=2), configure_logs=False)
    client = app.test_client()
    store = app.extensions["coachup"].store
    session_id = "s-" + uuid.uuid4().hex[:8]

    def turn(n: int) -> None:
        body = {"sessionId": session_id, "messageId": f"m{n}", "role": "user", "content": f"Turn {n} of the talk."}
        resp = client.post("/messages/ingest", json=body)
        assert resp.status_code == 200, resp.get_json()  # a summary never fails the ingest

    windows = "SELECT count(*) FROM summary_windows WHERE session_id = :s"
    jobs = "SELECT count(*) FROM jobs WHERE session_id = :s AND kind = 'summary'"
    turn(1)
    dialect = store.engine.dialect.name
    _ddl(store, _REFUSE[dialect])
    try:
        turn(2)  # completes window 1: its job row is refused
        assert (_count(store, windows, session_id), _count(store, jobs, session_id)) == (0, 0)
    finally:
        _ddl(store, _ALLOW[dialect])
    turn(3)
    turn(4)  # window 2: claimed with its job, one commit
    assert (_count(store, windows, session_id), _count(store, jobs, session_id)) == (1, 1)
