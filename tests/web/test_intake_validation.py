"""Bad input gets a typed 4xx and leaves nothing behind (in-process API on the embedded broker)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from coachup.store.models import Job, TranscriptTurn
from tests.support.broker import waiting_envelopes
from tests.support.outbox import wait_published
from tests.support.wait import wait_until


@pytest.fixture
def client(offline_settings):
    from web import create_app

    return create_app(offline_settings, configure_logs=False).test_client()


def _counts(client) -> tuple[int, int]:
    store = client.application.extensions["coachup"].store
    with store.session() as s:
        return (
            s.scalar(select(func.count()).select_from(TranscriptTurn)),
            s.scalar(select(func.count()).select_from(Job)),
        )


def _queued_messages(client, task: str | None = None) -> int:
    """Messages waiting on the broker; of `task` only when given (a session summary job may wait too)."""
    envelopes = waiting_envelopes(client.application.extensions["coachup"].celery)
    return len([e for e in envelopes if task in (None, e["headers"]["task"])])


GOOD = {"sessionId": "s1", "messageId": "m1", "role": "user", "content": "Hello there."}


@pytest.mark.parametrize(
    "body,kind",
    [
        ({**GOOD, "sessionId": None}, "validation_error"),
        ({k: v for k, v in GOOD.items() if k != "messageId"}, "validation_error"),
        ({**GOOD, "role": "robot"}, "validation_error"),
        ({**GOOD, "content": 42}, "validation_error"),
        ({**GOOD, "content": ""}, "validation_error"),
        ({**GOOD, "ts": "yesterday"}, "validation_error"),
        ({**GOOD, "end": "maybe"}, "validation_error"),
        ({**GOOD, "sessionId": "bad id with spaces"}, "validation_error"),
        ({**GOOD, "groupId": ["x"]}, "validation_error"),
    ],
)
def test_ingest_rejects_bad_fields_and_stores_nothing(client, body, kind):
    resp = client.post("/messages/ingest", json=body)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["type"] == kind and resp.get_json()["error"]["message"]
    assert _counts(client) == (0, 0) and _queued_messages(client) == 0


def test_malformed_json_is_a_400_with_typed_body(client):
    resp = client.post("/messages/ingest", data="{not json", content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"]["type"] == "invalid_json"
    assert _counts(client) == (0, 0)


def test_non_json_content_type_is_415(client):
    resp = client.post("/messages/ingest", data="sessionId=s1", content_type="text/plain")
    assert resp.status_code == 415 and resp.get_json()["error"]["type"] == "unsupported_media_type"


def test_oversized_body_is_413_and_stores_nothing(client):
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    resp = client.post("/messages/ingest", json={**GOOD, "content": "a" * (limit + 10)})
    assert resp.status_code == 413 and resp.get_json()["error"]["type"] == "payload_too_large"
    assert _counts(client) == (0, 0)


def test_same_message_twice_is_stored_once(client):
    first = client.post("/messages/ingest", json=GOOD).get_json()
    second = client.post("/messages/ingest", json=GOOD).get_json()
    assert first["deduped"] is False and second["deduped"] is True
    assert first["groupId"] == second["groupId"] and second["turnCount"] == 1
    assert _counts(client)[0] == 1


def test_max_turns_closes_the_group_and_enqueues_once(client):
    max_turns = client.application.extensions["coachup"].settings.interaction_max_turns
    for i in range(max_turns):
        body = client.post("/messages/ingest", json={**GOOD, "messageId": f"m{i}", "content": "One more point."})
        body = body.get_json()
    assert body["state"] == "idle" and body["closeReason"] == "max_turns" and body["enqueued"] is True
    wait_published(client.application.extensions["coachup"].store)
    assert _queued_messages(client, "assessments.run") == 1
    late = client.post("/messages/ingest", json={**GOOD, "messageId": "late", "groupId": body["groupId"]})
    assert late.status_code == 409 and late.get_json()["error"]["type"] == "group_idle"
    # a retried closing message is deduped and does not queue a second job
    again = client.post("/messages/ingest", json={**GOOD, "messageId": f"m{max_turns - 1}"}).get_json()
    assert again["deduped"] is True and again["enqueued"] is False
    wait_published(client.application.extensions["coachup"].store)
    assert _queued_messages(client, "assessments.run") == 1


def test_run_without_session_id_is_400(client):
    resp = client.post("/assessments/run", json={})
    assert resp.status_code == 400 and "sessionId" in resp.get_json()["error"]["message"]


def test_run_accepts_session_id_from_form_and_query(client):
    client.post("/messages/ingest", json=GOOD)
    form = client.post("/assessments/run", data={"sessionId": "s1"})
    assert form.status_code == 202, form.get_json()
    client.post("/messages/ingest", json={**GOOD, "sessionId": "s2"})
    query = client.post("/assessments/run?sessionId=s2")
    assert query.status_code == 202, query.get_json()


def test_run_twice_for_one_group_queues_one_job(client):
    client.post("/messages/ingest", json=GOOD)
    a = client.post("/assessments/run", json={"sessionId": "s1"}).get_json()
    b = client.post("/assessments/run", json={"sessionId": "s1"}).get_json()
    assert a["taskId"] == b["taskId"]
    wait_until(lambda: _queued_messages(client) == 1, timeout=10, what="the relay to publish the one job")


@pytest.mark.parametrize(
    "body,status",
    [
        ({"sessionId": "nobody"}, 404),
        ({"sessionId": "s1", "trackedSkills": ["no_such_skill"]}, 400),
        ({"sessionId": "s1", "transcript": "text"}, 400),
        ({"sessionId": "s1", "transcript": [{"role": "user"}]}, 400),
        ({"sessionId": "s1", "transcript": []}, 400),
    ],
)
def test_run_rejects_unknown_or_malformed(client, body, status):
    resp = client.post("/assessments/run", json=body)
    assert resp.status_code == status and resp.get_json()["error"]["type"]
    assert _counts(client)[1] == 0 and _queued_messages(client) == 0


def test_unknown_session_and_job_are_404(client):
    assert client.get("/assessments/nobody").status_code == 404
    assert client.get("/api/v1/jobs/4b7c0a4e-0000-4000-8000-000000000000").status_code == 404
    resp = client.get("/no/such/route")
    assert resp.status_code == 404 and resp.get_json()["error"]["type"] == "not_found"


def test_open_group_reports_open_status(client):
    client.post("/messages/ingest", json=GOOD)
    body = client.get("/assessments/s1").get_json()
    assert body["status"] == "active" and body["summary"] is None


def test_request_id_is_echoed_when_safe_or_generated(client):
    # the front end's ids: a UUID from its proxies, a short base36 id from its voice loop
    for rid in ("0b5e2f52-6a6b-4c4f-9a3e-1f7c2b9d8e77", "k3j9x0q2ab", "req-123", "A" * 64):
        assert client.get("/health", headers={"x-request-id": rid}).headers["x-request-id"] == rid
    for unsafe in ("two words", "id;drop", "<script>", "a/b", "-leading-dash", "A" * 65, "é"):
        generated = client.get("/health", headers={"x-request-id": unsafe}).headers["x-request-id"]
        assert generated != unsafe and len(generated) == 36 and generated.count("-") == 4


def test_16_kb_of_headers_pass_and_more_than_32_kib_is_a_json_431(client):
    # (Werkzeug's test client keeps its own cookie jar and drops a Cookie header: the real gunicorn test in
    # tests/web/test_gunicorn_limits.py sends the browser's cookie; here big plain headers stand in for it)
    big = {f"x-forwarded-{i}": "v" * 4000 for i in range(4)}  # 16 KB
    assert client.get("/health", headers=big).status_code == 200
    resp = client.get("/health", headers={**big, "x-more": "a" * 17_000})
    assert resp.status_code == 431 and resp.get_json()["error"]["type"] == "headers_too_large"
