"""One queue-depth read (`workers.depths`) behind every reader: `coachup queues`, the ops API and the worker's
gauges report the same dead-letter depth on every broker, and on SQS the gauges and the requeue sweep see
the configured queues (real names, configured region), not an empty broker."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from coachup.settings import load_settings
from tests.conftest import TEST_HASH_SECRET
from tests.support.services import EmbeddedBrokerServer, PrivateRedis
from tests.test_redrive_core import _letter

TOKEN = "ops-token-depths"


@pytest.fixture(params=["embedded", "redis", "sqs"])
def broker_env(request, tmp_path):
    """(name, environment) of a fresh broker of each kind, its server running."""
    env = {
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_ENV": "test",
        "COACHUP_ADMIN_TOKEN": TOKEN,
        "COACHUP_WORKER_METRICS_PORT": "0",
    }
    closers = []
    if request.param == "embedded":
        closers.append(EmbeddedBrokerServer(load_settings(env)).close)
    elif request.param == "redis":
        redis = PrivateRedis()
        env["COACHUP_BROKER_URL"] = redis.url
        closers.append(redis.close)
    else:
        from coachup.sqs.admin import bootstrap
        from tests.support.moto import sqs_stack_env

        # a region other than us-east-1: the old sampler looked queues up in a fixed region and found none
        env.update(sqs_stack_env(request.getfixturevalue("moto_sqs"), "depth"), AWS_REGION="eu-west-1")
        bootstrap(load_settings(env))
    yield request.param, env
    for close in closers:
        close()


def _dead_letters(name: str, app) -> dict:
    """Put dead letters where this broker keeps them; return the depth an operator must see, by part."""
    if name == "sqs":
        from coachup.sqs.admin import sqs_client
        from coachup.sqs.names import sqs_queues

        settings = app.coachup.settings
        client = sqs_client(settings)
        queues = {q.logical: q for q in sqs_queues(settings)}
        stt = client.get_queue_url(QueueName=queues["stt"].dlq)["QueueUrl"]
        fifo = client.get_queue_url(QueueName=queues["assessments"].dlq)["QueueUrl"]
        for _ in range(2):
            client.send_message(QueueUrl=stt, MessageBody="{}")
        client.send_message(QueueUrl=fifo, MessageBody="{}", MessageGroupId="g", MessageDeduplicationId="d1")
        return {"depth": 3, "stored": 0, "inBroker": 3}  # SQS keeps every letter in a queue's own DLQ
    from coachup.store.deadletters import StoreDeadLetters
    from workers.deadletter import publish_letter

    letters = StoreDeadLetters(app.coachup.store)
    letters.add(_letter(1))
    letters.add(_letter(2))
    publish_letter(app, _letter(3))  # on its way to the store: the recorder has not run (no worker here)
    return {"depth": 3, "stored": 2, "inBroker": 1}


def test_cli_ops_api_and_gauges_report_the_same_dead_letter_depth(broker_env):
    """After a drill (letters stored and letters still in the broker): `coachup queues`, `coachup dlq ls`,
    both ops routes and the worker gauge report one number, and the views with room say what it counts."""
    from web import create_app
    from workers import create_celery
    from workers.metrics_host import metrics_for, sample_once

    name, env = broker_env
    settings = load_settings(env)
    app = create_celery(settings)
    expected = _dead_letters(name, app)

    main = __import__("coachup.cli", fromlist=["main"]).main
    cli = CliRunner().invoke(main, ["queues", "--json"], env=env)
    assert cli.exit_code == 0, cli.output
    table = CliRunner().invoke(main, ["queues"], env=env)
    listed = CliRunner().invoke(main, ["dlq", "ls"], env=env)
    assert listed.exit_code == 0, listed.output
    api = create_app(settings, configure_logs=False).test_client()
    auth = {"authorization": f"Bearer {TOKEN}"}
    ops = api.get("/api/v1/ops/queues", headers=auth)
    assert ops.status_code == 200, ops.get_json()
    letters = api.get("/api/v1/ops/deadletters", headers=auth)
    assert letters.status_code == 200, letters.get_json()
    sample_once(app)
    gauge = metrics_for(app).registry.get_sample_value("coachup_queue_depth", {"queue": "deadletter"})

    counts = "stored letters plus letters waiting in the broker"
    labelled = {**expected, "counts": counts}
    assert json.loads(cli.stdout)["deadLetters"] == labelled
    assert ops.get_json()["deadLetters"] == labelled
    assert {k: letters.get_json()[k] for k in labelled} == labelled
    assert gauge == expected["depth"]
    line = (
        f"dead letters: {expected['depth']} ({expected['stored']} stored, {expected['inBroker']} waiting in the broker)"
    )
    assert line in table.stdout and line in listed.stdout
    assert json.loads(cli.stdout)["broker"] == ops.get_json()["broker"] == name


def test_sqs_gauges_count_the_configured_queues(moto_sqs, tmp_path):
    from coachup.jobs import JobRef, job_kind
    from coachup.sqs.admin import bootstrap
    from tests.support.moto import sqs_stack_env
    from workers import create_celery
    from workers.enqueue import ASSESS_TASK, publish
    from workers.metrics_host import metrics_for, sample_once

    env = {"COACHUP_DATA_DIR": str(tmp_path), **sqs_stack_env(moto_sqs, "gauge"), "AWS_REGION": "eu-west-1"}
    settings = load_settings(env)
    bootstrap(settings)
    app = create_celery(settings)
    # Given two assessment messages and one STT message waiting on their (prefixed, FIFO and standard) queues
    broker, hasher = app.coachup.broker, app.coachup.hasher
    for group in ("g1", "g2"):
        options = broker.publish_options(job_kind("assessment"), hasher, JobRef("s", group))
        publish(app, ASSESS_TASK, task_id=str(uuid.uuid4()), args=["x"], headers={}, **options)
    publish(app, "stt.transcribe", task_id=str(uuid.uuid4()), args=["y"], headers={})
    # When the worker's sampler runs
    sample_once(app)
    # Then the gauges (what the backlog alert reads) carry the real counts
    registry = metrics_for(app).registry
    assert registry.get_sample_value("coachup_queue_depth", {"queue": "assessments"}) == 2
    assert registry.get_sample_value("coachup_queue_depth", {"queue": "stt"}) == 1
    assert registry.get_sample_value("coachup_queue_in_flight", {"queue": "stt"}) == 0
    assert registry.get_sample_value("coachup_assessments_queue_depth") == 2


def test_sqs_requeue_leaves_a_waiting_job_alone_and_republishes_a_lost_one(moto_sqs, tmp_path):
    from coachup.context import RequestContext
    from coachup.sqs.admin import bootstrap
    from coachup.store.models import Job
    from tests.support.moto import sqs_stack_env
    from workers import create_celery
    from workers.enqueue import enqueue_speech
    from workers.requeue import requeue_lost_jobs

    env = {
        "COACHUP_DATA_DIR": str(tmp_path),
        **sqs_stack_env(moto_sqs, "requeue"),
        "AWS_REGION": "eu-west-1",
        "COACHUP_REQUEUE_AFTER_S": "30",
    }
    settings = load_settings(env)
    bootstrap(settings)
    app = create_celery(settings)
    rt = app.coachup
    ctx = RequestContext(requestId=str(uuid.uuid4()))
    # Given an STT job whose message is still waiting on its queue, queued a minute ago
    waiting = enqueue_speech(app, rt.store, rt.hasher, "stt", params={"provider": "mock"}, ctx=ctx)
    with rt.store.session() as s, s.begin():
        s.execute(update(Job).where(Job.id == waiting).values(updated_at=datetime.now(UTC) - timedelta(seconds=60)))
    # When the sweep runs: the broker still holds the message, so the job is left alone
    assert requeue_lost_jobs(app, rt.store, rt.hasher) == 0
    from workers.depths import read_depths

    assert read_depths(app).row("stt").visible == 1  # not doubled
    # Once the message is gone (taken and lost), the same sweep publishes it again, once
    from coachup.sqs.admin import sqs_client
    from coachup.sqs.names import sqs_queues

    client = sqs_client(settings)
    url = client.get_queue_url(QueueName={q.logical: q for q in sqs_queues(settings)}["stt"].name)["QueueUrl"]
    [message] = client.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert requeue_lost_jobs(app, rt.store, rt.hasher) == 1
    assert read_depths(app).row("stt").visible == 1
