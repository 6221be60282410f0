"""SQS unreachable or not bootstrapped: the API still answers 202 fast (the job row is committed; the outbox relay
publishes it once SQS can take it), and the relay sends exactly one message per job once it can."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import func, select

from coachup.settings import load_settings
from coachup.store import outbox
from coachup.store.models import Job
from tests.support.services import refused_port
from tests.support.wait import wait_until


def _client(env):
    from web import create_app

    return create_app(load_settings(env), configure_logs=False).test_client()


def _jobs(client) -> int:
    with client.application.extensions["coachup"].store.session() as s:
        return s.scalar(select(func.count()).select_from(Job))


def _post_run(client, prefix: str):
    return client.post(
        "/assessments/run",
        json={"sessionId": prefix + uuid.uuid4().hex[:6], "transcript": [{"role": "user", "content": "Hello there."}]},
    )


def _relayed(client, status: str) -> float:
    registry = client.application.extensions["coachup_metrics"].registry
    return registry.get_sample_value("coachup_outbox_publishes_total", {"status": status}) or 0.0


def _waiting(client) -> int:
    celery = client.application.extensions["coachup"].celery
    (row,) = celery.coachup.broker.queue_depths(celery, ["assessments"])
    return row.visible


def test_a_run_with_the_sqs_endpoint_down_is_202_fast_and_stays_in_the_outbox(sqs_env):
    env = {**sqs_env, "AWS_ENDPOINT_URL_SQS": f"http://127.0.0.1:{refused_port()}", "COACHUP_OUTBOX_RETRY_S": "0.2"}
    client = _client(env)  # nothing listens there

    started = time.monotonic()
    resp = _post_run(client, "out-")
    elapsed = time.monotonic() - started

    assert resp.status_code == 202, resp.get_json()
    assert elapsed < 2, elapsed
    job_id = resp.get_json()["taskId"]
    store = client.application.extensions["coachup"].store
    wait_until(lambda: _relayed(client, "error") >= 1, timeout=30, what="the relay to try and defer")
    assert outbox.unpublished(store, job_id) and store.get_job(job_id)["status"] == "queued"


def test_a_run_before_bootstrap_is_202_and_published_once_the_queues_exist(sqs_env):
    from coachup.sqs.admin import bootstrap

    client = _client({**sqs_env, "COACHUP_OUTBOX_RETRY_S": "0.2"})  # nobody ran `coachup sqs bootstrap` yet
    started = time.monotonic()
    resp = _post_run(client, "boot-")
    assert time.monotonic() - started < 2
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["taskId"]
    store = client.application.extensions["coachup"].store
    wait_until(lambda: _relayed(client, "error") >= 1, timeout=30, what="the relay to try and defer")
    assert outbox.unpublished(store, job_id)

    bootstrap(load_settings(sqs_env))
    # the relay retries on its own backoff (a new request would wake it sooner): one message, one publish
    wait_until(lambda: not outbox.unpublished(store, job_id), timeout=60, what="the relay to publish the job")
    assert _relayed(client, "ok") == 1 and _waiting(client) == 1


def test_health_reports_sqs_itself(sqs_env):
    from coachup.sqs.admin import bootstrap

    bootstrap(load_settings(sqs_env))
    healthy = _client(sqs_env).get("/api/health").get_json()
    down = _client({**sqs_env, "AWS_ENDPOINT_URL_SQS": f"http://127.0.0.1:{refused_port()}"}).get("/api/health")
    assert healthy["dependencies"]["broker"]["status"] == "healthy", healthy
    assert down.status_code == 503 and down.get_json()["dependencies"]["broker"]["status"] == "unhealthy"


def test_the_readiness_probe_asks_sqs_with_one_client_built_when_the_api_starts(sqs_env):
    # building a boto3 client reads botocore's service model (0.1-0.4 s of CPU on this host): built per probe,
    # the first probe after a start could outlast its 2.5 s wait on a loaded host and read "unhealthy"
    from coachup.sqs.admin import bootstrap

    bootstrap(load_settings(sqs_env))
    client = _client(sqs_env)
    broker = client.application.extensions["coachup"].celery.coachup.broker
    built = broker._ping
    assert built is not None, "the API builds the probe's client at start"
    asked: list[str] = []  # what this client sent to SQS (botocore's own event hook)
    built.meta.events.register(
        "before-parameter-build.sqs.GetQueueUrl", lambda **kw: asked.append(kw["params"]["QueueName"])
    )
    for _ in range(3):
        deps = client.get("/api/health").get_json()["dependencies"]
        assert deps["broker"]["status"] == "healthy", deps
    assert broker._ping is built and len(asked) == 3, asked


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

    # When the API takes a run, then it answers 202 (the job is committed) but the relay refuses to publish it
    # instead of risking a double run
    client = _client({**sqs_env, "COACHUP_OUTBOX_RETRY_S": "0.2"})
    resp = _post_run(client, "vt-")
    assert resp.status_code == 202 and _jobs(client) == 1
    job_id = resp.get_json()["taskId"]
    store = client.application.extensions["coachup"].store
    wait_until(lambda: _relayed(client, "error") >= 1, timeout=30, what="the relay to refuse the publish")
    assert outbox.unpublished(store, job_id)

    # and once bootstrap aligns the queues, the same job is published (a refusal is not cached)
    bootstrap(settings)
    wait_until(lambda: not outbox.unpublished(store, job_id), timeout=60, what="the relay to publish the job")
    assert _relayed(client, "ok") == 1
