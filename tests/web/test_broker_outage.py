"""Broker unreachable: the API still answers 202/200 at once (the job row is committed, the outbox relay publishes
it later), the job runs exactly once when the broker is back, and /api/health says the broker is down."""

from __future__ import annotations

import time
import uuid

import pytest

from coachup.settings import load_settings
from coachup.store import outbox
from tests.conftest import TEST_HASH_SECRET
from tests.support.services import PrivateRedis
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess


@pytest.fixture
def outage(tmp_path):
    redis = PrivateRedis()
    env = {
        "COACHUP_ENV": "test",
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_BROKER_URL": redis.url,
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_LOG_LEVEL": "INFO",
        "COACHUP_WORKER_METRICS_PORT": "0",
        "COACHUP_OUTBOX_RETRY_S": "0.2",
    }
    from web import create_app

    client = create_app(load_settings(env), configure_logs=False).test_client()
    client.env, client.tmp = env, tmp_path
    workers: list[WorkerProcess] = []
    client.workers = workers
    yield client, redis
    for w in workers:
        w.stop()
    redis.close()


def _worker(client) -> WorkerProcess:
    proc = WorkerProcess(
        client.env, client.tmp / "worker.log", name=f"outage-{uuid.uuid4().hex[:6]}", queues="assessments"
    )
    client.workers.append(proc)
    return proc.wait_ready()


def _published_ok(client) -> float:
    registry = client.application.extensions["coachup_metrics"].registry
    return registry.get_sample_value("coachup_outbox_publishes_total", {"status": "ok"}) or 0.0


def _runs(worker: WorkerProcess, job_id: str) -> int:
    """Task runs of `job_id`: the worker logs one `assessments_dequeue` per delivery it starts."""
    return len([e for e in worker.events("assessments_dequeue") if e.get("taskId") == job_id])


def _runs_once(client, redis, job_id: str) -> None:
    """Broker back, a worker up: the job is published by the relay once, runs once, and nothing is left queued."""
    store = client.application.extensions["coachup"].store
    worker = _worker(client)
    client.get("/health")  # any request is fine; the relay retries on its own backoff too
    broker = redis.client()
    wait_until(
        # done, acked, and no copy of its message left waiting to run again
        lambda: (
            (store.get_job(job_id) or {}).get("status") == "done"
            and broker.llen("assessments") == 0
            and broker.hlen("unacked") == 0
        ),
        timeout=60,
        what="the job to run and its message to be acked",
    )
    assert not outbox.unpublished(store, job_id)
    assert _published_ok(client) == 1  # one message was published for it, not one per retry
    assert _runs(worker, job_id) == 1, worker.log_tail()
    assert store.count_assessments(*_subject(store, job_id)) == 1


def _subject(store, job_id: str) -> tuple[str, str]:
    job = store.job_record(job_id)
    assert job is not None and job.session_id and job.group_id
    return job.session_id, job.group_id


def test_run_with_broker_down_is_202_fast_and_runs_once_when_it_is_back(outage):
    client, redis = outage
    assert client.get("/api/health").status_code == 200
    long = "I ran the quarterly review and we shipped on time, then planned the next release with the team."
    client.post("/messages/ingest", json={"sessionId": "s1", "messageId": "m1", "role": "user", "content": long})
    redis.stop()

    started = time.monotonic()
    resp = client.post("/assessments/run", json={"sessionId": "s1"})
    elapsed = time.monotonic() - started

    assert resp.status_code == 202, resp.get_json()
    assert elapsed < 2.0, elapsed
    job_id = resp.get_json()["taskId"]
    store = client.application.extensions["coachup"].store
    assert store.get_job(job_id)["status"] == "queued" and outbox.unpublished(store, job_id)
    # the scrape counts the outbox from the store (the relay is not the one to ask while the broker is out)
    scraped = client.get("/metrics").get_data(as_text=True).splitlines()
    assert "coachup_outbox_pending_jobs 1.0" in scraped
    assert any(line.startswith("coachup_outbox_oldest_pending_age_seconds ") for line in scraped)

    redis.start()
    _runs_once(client, redis, job_id)
    scraped = client.get("/metrics").get_data(as_text=True).splitlines()
    assert "coachup_outbox_pending_jobs 0.0" in scraped
    assert any(line.startswith("coachup_outbox_publish_lag_seconds_count 1.0") for line in scraped)


def test_closing_ingest_with_broker_down_is_200_and_its_retry_joins_the_same_job(outage):
    client, redis = outage
    redis.stop()
    turn = {
        "sessionId": "s2",
        "messageId": "m1",
        "role": "user",
        "content": "I planned the release with the team and we shipped the quarterly review on time. Goodbye.",
        "end": True,
    }
    started = time.monotonic()
    resp = client.post("/messages/ingest", json=turn)
    assert time.monotonic() - started < 2.0
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["state"] == "idle" and body["enqueued"] is True
    job_id = body["taskId"]
    store = client.application.extensions["coachup"].store
    assert outbox.unpublished(store, job_id) and store.closed_groups_awaiting_job() == []

    # the client's retry of the same message (it saw a timeout, say) answers with the same job, queues nothing new
    redis.start()
    again = client.post("/messages/ingest", json=turn)
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["deduped"] is True and again.get_json()["taskId"] == job_id
    assert again.get_json()["enqueued"] is False
    _runs_once(client, redis, job_id)


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
