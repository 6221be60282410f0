"""Broker unreachable: STT and TTS answer 202 fast with a committed job (the outbox relay publishes it later), and
the job runs exactly once when the broker is back."""

from __future__ import annotations

import io
import time

import pytest

from coachup.settings import load_settings
from coachup.speech.audio import tone_wav
from coachup.store import outbox
from tests.support.services import PrivateRedis
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess


@pytest.fixture
def client_without_broker(tmp_path):
    redis = PrivateRedis()
    env = {
        "COACHUP_ENV": "test",
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_BROKER_URL": redis.url,
        "COACHUP_HASH_SECRET": "test-hash-secret-7f3a",
        "COACHUP_LOG_LEVEL": "INFO",
        "COACHUP_WORKER_METRICS_PORT": "0",
        "COACHUP_OUTBOX_RETRY_S": "0.2",
        "SPEECH_WAIT_MS": "500",  # the route waits this long for a worker, then answers 202 with the job
    }
    from web import create_app

    client = create_app(load_settings(env), configure_logs=False).test_client()
    redis.stop()
    workers: list[WorkerProcess] = []
    yield client, redis, env, tmp_path, workers
    for w in workers:
        w.stop()
    redis.close()


@pytest.mark.parametrize(
    "send",
    [
        lambda c: c.post("/api/v1/tts", json={"text": "hello"}),
        lambda c: c.post(
            "/api/v1/stt",
            data={"audio": (io.BytesIO(tone_wav(100)), "a.wav", "audio/wav")},
            content_type="multipart/form-data",
        ),
    ],
    ids=["tts", "stt"],
)
def test_speech_with_the_broker_down_is_202_and_runs_once_when_it_is_back(client_without_broker, send):
    client, redis, env, tmp, workers = client_without_broker
    started = time.monotonic()
    resp = send(client)
    assert time.monotonic() - started < 2.5
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["jobId"]
    store = client.application.extensions["coachup"].store
    assert store.get_job(job_id)["status"] == "queued" and outbox.unpublished(store, job_id)

    redis.start()
    worker = WorkerProcess(env, tmp / "worker.log", name="speech-outage", queues="stt,tts")
    workers.append(worker.wait_ready())
    broker = redis.client()
    wait_until(
        lambda: (
            (store.get_job(job_id) or {}).get("status") == "done"
            and broker.llen("stt") + broker.llen("tts") == 0
            and broker.hlen("unacked") == 0
        ),
        timeout=60,
        what="the speech job to run and its message to be acked",
    )
    assert not outbox.unpublished(store, job_id)
    runs = [e for e in worker.events("task_start") if e.get("taskId") == job_id]
    assert len(runs) == 1, worker.log_tail()
