"""One real worker (Redis, SQLite store, `openai` provider on a scripted local server) and one scenario run
through the in-process API, shared by the observability tests: N successes, M failures, K retries.

The worker consumes every queue but `deadletter`, so published dead letters stay put and the queue-depth
sampler has something to count.
"""

from __future__ import annotations

import io
import json
import logging
import urllib.request
import uuid
from dataclasses import dataclass, field

import pytest

from coachup.logs import configure_logging
from coachup.settings import load_settings
from tests.conftest import TEST_HASH_SECRET
from tests.support.fake_openai import ScriptedOpenAI
from tests.support.leaks import BrokerTap
from tests.support.services import free_port, redis_db, redis_url, suite_redis
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess

OPENAI_KEY = "sk-test-OBSSECRETKEY-93b1"
RAW_USER = "user-RAWUSER-5d2e"
RAW_TEXT = "zebraquartz"  # a word no log line, label or header may ever contain
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
DEADLETTERS_PUBLISHED = 2


@dataclass
class Job:
    kind: str  # ok | rejected | flaky
    session_id: str
    request_id: str
    group_id: str = ""
    task_id: str = ""


@dataclass
class Scenario:
    worker: WorkerProcess
    fake: ScriptedOpenAI
    metrics_url: str
    api_lines: list[str]
    api_metrics: str
    broker_messages: list[str]
    jobs: list[Job]
    client: object = None
    app: object = None
    env: dict = field(default_factory=dict)

    def scrape(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return resp.read().decode()

    def api_events(self, name: str) -> list[dict]:
        return [r for r in map(json.loads, self.api_lines) if r.get("event") == name]


def obs_env(data_dir, broker_url: str, fake: ScriptedOpenAI, metrics_port: int) -> dict[str, str]:
    """Worker/API environment: Redis, SQLite, the `openai` provider on `fake`, a metrics endpoint."""
    return {
        "COACHUP_ENV": "test",
        "COACHUP_DATA_DIR": str(data_dir),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_BROKER_URL": broker_url,
        "AI_PROVIDER_ASSESS": "openai",
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "ASSESSMENTS_BACKOFF_BASE_MS": "50",
        "COACHUP_WORKER_METRICS_PORT": str(metrics_port),
        "COACHUP_WORKER_METRICS_HOST": "127.0.0.1",
        "COACHUP_QUEUE_DEPTH_INTERVAL_S": "0.3",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def _ingest(client, job: Job, text: str) -> dict:
    headers = {
        "x-request-id": job.request_id,
        "traceparent": TRACEPARENT,
        "x-user-id": RAW_USER,
        "x-provider": "openai",
        "x-model-id": "gpt-4o-mini",
        "x-secret-thing": "RAWUNKNOWNHEADER",
    }
    body = None
    # the first turn alone passes the 15-word evidence minimum, so every job reaches the provider
    for i, content in enumerate(
        [f"I ran the {RAW_TEXT} review on Monday with the whole team and the new manager.", text]
    ):
        payload = {"sessionId": job.session_id, "messageId": f"m{i}", "role": "user", "content": content}
        if i == 1:
            payload["end"] = True
        resp = client.post("/messages/ingest", json=payload, headers=headers)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
    job.group_id, job.task_id = body["groupId"], body["taskId"]
    return body


def _status(client, job: Job) -> str:
    return client.get(f"/assessments/{job.session_id}?groupId={job.group_id}").get_json().get("status")


@pytest.fixture(scope="session")
def scenario(tmp_path_factory, monkeypatch_session):
    db = redis_db("observability")
    data_dir = tmp_path_factory.mktemp("obs")
    monkeypatch_session.setenv("NO_PROXY", "127.0.0.1,localhost")
    fake = ScriptedOpenAI().start()
    port = free_port()
    env = obs_env(data_dir, redis_url(db), fake, port)
    settings = load_settings(env)
    from coachup.store import create_store

    create_store(settings.database_url)
    stale = settings.metrics_root / f"worker-{port}"
    stale.mkdir(parents=True)
    (stale / "counter_999999.db").write_bytes(b"stale counts from a previous run")
    worker = WorkerProcess(env, data_dir / "worker.log", name="obs", queues="assessments,stt,tts").wait_ready()

    from web import create_app

    stream = io.StringIO()
    configure_logging("api", "test", "INFO", stream=stream)
    app = create_app(settings, configure_logs=False)
    client = app.test_client()
    jobs = [Job("ok", f"sess-RAWSESS-{uuid.uuid4().hex[:6]}", str(uuid.uuid4())) for _ in range(2)]
    jobs.append(Job("rejected", f"sess-RAWSESS-{uuid.uuid4().hex[:6]}", str(uuid.uuid4())))
    jobs.append(Job("flaky", f"sess-RAWSESS-{uuid.uuid4().hex[:6]}", str(uuid.uuid4())))
    texts = {"ok": "Revenue grew eight percent.", "rejected": "REJECTME please.", "flaky": "FLAKYONCE please."}
    try:
        with BrokerTap("127.0.0.1", suite_redis().port, db) as tap:
            for job in jobs:
                _ingest(client, job, texts[job.kind])
            for _ in range(DEADLETTERS_PUBLISHED):
                app.extensions["coachup"].celery.send_task("deadletter.probe", args=["job-id"], queue="deadletter")
            want = {"ok": "done", "flaky": "done", "rejected": "failed"}
            for job in jobs:
                wait_until(
                    lambda job=job: _status(client, job) == want[job.kind],
                    timeout=60,
                    interval=0.1,
                    what=f"{job.kind} job to end",
                )
        api_metrics = client.get("/metrics").data.decode()
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_coachup", False)]:
            root.removeHandler(handler)
    s = Scenario(
        worker,
        fake,
        f"http://127.0.0.1:{port}/metrics",
        stream.getvalue().splitlines(),
        api_metrics,
        tap.texts(),
        jobs,
        client,
        app,
        env,
    )
    yield s
    worker.stop()
    fake.stop()


@pytest.fixture(scope="session")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()
