"""Broker unreachable: 503 broker_unavailable within 2 s, no job row left queued, and /api/health says so."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import func, select

from coachup.settings import load_settings
from coachup.store.models import Job
from tests.conftest import TEST_HASH_SECRET
from tests.support.services import PrivateRedis


@pytest.fixture
def outage(tmp_path):
    redis = PrivateRedis()
    settings = load_settings(
        {"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_BROKER_URL": redis.url, "COACHUP_HASH_SECRET": TEST_HASH_SECRET}
    )
    from web import create_app

    client = create_app(settings, configure_logs=False).test_client()
    yield client, redis
    redis.close()


def _jobs(client, status=None) -> int:
    store = client.application.extensions["coachup"].store
    query = select(func.count()).select_from(Job)
    if status:
        query = query.where(Job.status == status)
    with store.session() as s:
        return s.scalar(query)


def test_enqueue_with_broker_down_is_503_fast_and_leaves_no_queued_row(outage):
    client, redis = outage
    assert client.get("/api/health").status_code == 200
    client.post(
        "/messages/ingest", json={"sessionId": "s1", "messageId": "m1", "role": "user", "content": "A short answer."}
    )
    redis.stop()

    started = time.monotonic()
    resp = client.post("/assessments/run", json={"sessionId": "s1"})
    elapsed = time.monotonic() - started

    assert resp.status_code == 503 and resp.get_json()["error"]["type"] == "broker_unavailable"
    assert elapsed < 2.0, elapsed
    assert _jobs(client) == 0


def test_closing_ingest_with_broker_down_keeps_the_turn_and_queues_it_later(outage):
    client, redis = outage
    redis.stop()
    resp = client.post(
        "/messages/ingest",
        json={"sessionId": "s2", "messageId": "m1", "role": "user", "content": "That is all, goodbye.", "end": True},
    )
    assert resp.status_code == 503 and resp.get_json()["error"]["type"] == "broker_unavailable"
    assert _jobs(client, "queued") == 0
    store = client.application.extensions["coachup"].store
    assert store.closed_groups_awaiting_job() == [("s2", store.latest_group_id("s2"))]

    # When the broker is back, the client's retry of the same message queues the assessment (deduped turn)
    redis.start()
    again = client.post(
        "/messages/ingest",
        json={"sessionId": "s2", "messageId": "m1", "role": "user", "content": "That is all, goodbye.", "end": True},
    )
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["deduped"] is True and again.get_json()["enqueued"] is True
    assert _jobs(client, "queued") == 1 and store.closed_groups_awaiting_job() == []


def test_health_reports_each_dependency_and_503_when_broker_is_down(outage):
    client, redis = outage
    ok = client.get("/api/health").get_json()
    assert ok["status"] == "healthy"
    for name in ("broker", "store", "resultBackend"):
        assert ok["dependencies"][name]["status"] == "healthy"
        assert isinstance(ok["dependencies"][name]["latency_ms"], float)
    redis.stop()
    resp = client.get("/api/health")
    body = resp.get_json()
    assert resp.status_code == 503 and body["status"] == "unhealthy"
    assert body["dependencies"]["broker"]["status"] == "unhealthy"
    assert body["dependencies"]["store"]["status"] == "healthy"
    assert client.get("/health").status_code == 200  # liveness does not depend on the broker


def test_request_ids_differ_per_request(outage):
    client, _ = outage
    a = client.get("/health").headers["x-request-id"]
    b = client.get("/health").headers["x-request-id"]
    assert a != b and uuid.UUID(a).version == 4
