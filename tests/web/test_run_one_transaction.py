"""`POST /assessments/run` on a stored group closes it and writes its job row in one transaction (issue 16 gap):
when the job row cannot be written, the group is not left closed without a job. Real stores (SQLite and
PostgreSQL); the failure is the database's own (a trigger that refuses job rows), not a patched method."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from coachup.store import outbox

_REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs BEGIN SELECT RAISE(ABORT, 'jobs refused'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_jobs() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'jobs refused'; END $$ "
        "LANGUAGE plpgsql",
        "CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_jobs()",
    ],
}
_ALLOW = {
    "sqlite": ["DROP TRIGGER refuse_jobs"],
    "postgresql": ["DROP TRIGGER refuse_jobs ON jobs", "DROP FUNCTION refuse_jobs()"],
}


def _ddl(store, statements: list[str]) -> None:
    with store.engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql))


def test_a_run_whose_job_row_fails_leaves_the_group_open_and_a_retry_queues_it_once(offline_settings, store_url):
    from web import create_app

    app = create_app(offline_settings.replace(database_url=store_url), configure_logs=False)
    client = app.test_client()
    store = app.extensions["coachup"].store
    session_id, group_id = "s-" + uuid.uuid4().hex[:8], "g-" + uuid.uuid4().hex[:8]
    turn = {"sessionId": session_id, "groupId": group_id, "messageId": "m1", "role": "user"}
    resp = client.post("/messages/ingest", json={**turn, "content": "I led the launch review."})
    assert resp.status_code == 200, resp.get_json()
    assert store.group_info(session_id, group_id)["state"] == "active"

    dialect = store.engine.dialect.name
    _ddl(store, _REFUSE[dialect])
    try:
        resp = client.post("/assessments/run", json={"sessionId": session_id, "groupId": group_id})
        assert resp.status_code >= 500, resp.get_json()
        # the close was rolled back with the refused job row: the group is as it was, no job
        assert store.group_info(session_id, group_id)["state"] == "active"
        assert store.latest_assessment_job(session_id, group_id) is None
    finally:
        _ddl(store, _ALLOW[dialect])

    resp = client.post("/assessments/run", json={"sessionId": session_id, "groupId": group_id})
    assert resp.status_code == 202, resp.get_json()
    task_id = resp.get_json()["taskId"]
    info = store.group_info(session_id, group_id)
    assert (info["state"], info["closeReason"]) == ("idle", "api")
    assert outbox.unpublished(store, task_id) or store.get_job(task_id) is not None
    # a second run answers with the same job (the group's active job), still one row
    again = client.post("/assessments/run", json={"sessionId": session_id, "groupId": group_id})
    assert again.status_code == 202 and again.get_json()["taskId"] == task_id
    with store.engine.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM jobs WHERE session_id = :s AND group_id = :g"), {"s": session_id, "g": group_id}
        ).scalar()
    assert count == 1
