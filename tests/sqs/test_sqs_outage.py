"""SQS unreachable or not bootstrapped: the API answers 503 broker_unavailable fast and leaves no job row."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import func, select

from coachup.settings import load_settings
from coachup.store.models import Job
from tests.support.services import refused_port


def _client(env):
    from web import create_app

    return create_app(load_settings(env), configure_logs=False).test_client()


def _jobs(client) -> int:
    with client.application.extensions["coachup"].store.session() as s:
        return s.scalar(select(func.count()).select_from(Job))


@pytest.mark.parametrize("case", ["endpoint down", "queues missing"])
def test_publish_to_unusable_sqs_is_503_fast_and_leaves_no_row(case, sqs_env):
    env = dict(sqs_env)
    if case == "endpoint down":
        env["AWS_ENDPOINT_URL_SQS"] = f"http://127.0.0.1:{refused_port()}"  # nothing listens there
    client = _client(env)  # and nobody ran `coachup sqs bootstrap` for this prefix

    started = time.monotonic()
    resp = client.post(
        "/assessments/run",
        json={"sessionId": "out-" + uuid.uuid4().hex[:6], "transcript": [{"role": "user", "content": "Hello there."}]},
    )
    elapsed = time.monotonic() - started

    assert resp.status_code == 503, resp.get_json()
    assert resp.get_json()["error"]["type"] == "broker_unavailable"
    assert elapsed < 5, elapsed
    assert _jobs(client) == 0


def test_health_reports_sqs_itself(sqs_env):
    from coachup.sqs.admin import bootstrap

    bootstrap(load_settings(sqs_env))
    healthy = _client(sqs_env).get("/api/health").get_json()
    down = _client({**sqs_env, "AWS_ENDPOINT_URL_SQS": f"http://127.0.0.1:{refused_port()}"}).get("/api/health")
    assert healthy["dependencies"]["broker"]["status"] == "healthy", healthy
    assert down.status_code == 503 and down.get_json()["dependencies"]["broker"]["status"] == "unhealthy"


def test_a_worker_on_queues_nobody_bootstrapped_exits_non_zero_naming_the_fix(sqs_env):
    import os
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "coachup"
    proc = subprocess.run(
        [str(exe), "worker", "-c", "1", "--without-mingle", "--without-gossip"],
        # no metrics endpoint: another suite's worker may hold the default port, which a worker now refuses
        env={**os.environ, **sqs_env, "COACHUP_WORKER_METRICS_PORT": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "run `coachup sqs bootstrap` first" in proc.stdout + proc.stderr


def test_a_queue_whose_visibility_timeout_is_too_short_is_refused(sqs_env):
    from coachup.sqs.admin import bootstrap

    # Given queues bootstrapped with a 60 s visibility timeout, and settings that now ask for 120 s
    settings = load_settings(sqs_env)
    bootstrap(settings.replace(visibility_timeout_s=60, backoff_max_ms=1000, group_timeout_ms=1000))

    # When the API publishes, then it refuses (503) instead of risking a double run
    client = _client(sqs_env)
    resp = client.post(
        "/assessments/run",
        json={"sessionId": "vt-" + uuid.uuid4().hex[:6], "transcript": [{"role": "user", "content": "Hello there."}]},
    )
    assert resp.status_code == 503 and _jobs(client) == 0

    # and once bootstrap aligns the queues, the same settings work (a refusal is not cached)
    bootstrap(settings)
    ok = _client(sqs_env).post(
        "/assessments/run",
        json={"sessionId": "vt2-" + uuid.uuid4().hex[:6], "transcript": [{"role": "user", "content": "Hi."}]},
    )
    assert ok.status_code == 202, ok.get_json()
