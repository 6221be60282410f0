"""`coachup sqs bootstrap` and `coachup queues` against a local SQS (moto server)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from coachup.cli import main
from coachup.sqs.admin import bootstrap, depths, sqs_client
from coachup.sqs.names import sqs_queues


def test_bootstrap_creates_every_queue_with_its_dlq_once(sqs_settings):
    # When bootstrap runs twice
    first = bootstrap(sqs_settings)
    second = bootstrap(sqs_settings)

    # Then the first run created 12 queues (6 and their DLQs) and the second found them all
    assert [line.action for line in first] == ["created"] * 12
    assert [line.action for line in second] == ["exists"] * 12
    client = sqs_client(sqs_settings)
    for q in sqs_queues(sqs_settings):
        url = client.get_queue_url(QueueName=q.name)["QueueUrl"]
        attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        dlq_url = client.get_queue_url(QueueName=q.dlq)["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.loads(attrs["RedrivePolicy"])
        assert policy["deadLetterTargetArn"] == dlq_arn and int(policy["maxReceiveCount"]) == 5
        assert attrs["VisibilityTimeout"] == str(sqs_settings.visibility_timeout_s)
        assert (attrs.get("FifoQueue") == "true") == (q.logical == "assessments")


def test_bootstrap_brings_changed_settings_into_line(sqs_settings):
    bootstrap(sqs_settings)
    changed = sqs_settings.replace(sqs_max_receive_count=2)
    lines = bootstrap(changed)
    assert {line.action for line in lines if line.role == "queue"} == {"updated"}
    assert all(d.visible == 0 and d.in_flight == 0 and d.dead_letter == 0 for d in depths(changed))


def test_cli_bootstrap_prints_created_then_existing(sqs_env):
    runner = CliRunner()
    first = runner.invoke(main, ["sqs", "bootstrap"], env=sqs_env)
    assert first.exit_code == 0, first.output
    assert "12 created, 0 already existed" in first.output and "created  queue" in first.output
    second = runner.invoke(main, ["sqs", "bootstrap"], env=sqs_env)
    assert "0 created, 12 already existed" in second.output


def test_cli_queues_shows_visible_in_flight_and_dead_letter_depth(sqs_env, sqs_settings):
    # Given bootstrapped queues, one message waiting on stt and one in its DLQ, one taken from tts
    bootstrap(sqs_settings)
    client = sqs_client(sqs_settings)
    by_logical = {q.logical: q for q in sqs_queues(sqs_settings)}
    url = lambda name: client.get_queue_url(QueueName=name)["QueueUrl"]  # noqa: E731
    client.send_message(QueueUrl=url(by_logical["stt"].name), MessageBody="{}")
    client.send_message(QueueUrl=url(by_logical["stt"].dlq), MessageBody="{}")
    client.send_message(QueueUrl=url(by_logical["tts"].name), MessageBody="{}")
    assert client.receive_message(QueueUrl=url(by_logical["tts"].name), MaxNumberOfMessages=1).get("Messages")

    # When the operator asks for the depths
    result = CliRunner().invoke(main, ["queues", "--json"], env=sqs_env)

    # Then each queue reports its own counts
    assert result.exit_code == 0, result.output
    rows = {r["queue"]: r for r in json.loads(result.stdout)["queues"]}
    assert (rows["stt"]["visible"], rows["stt"]["inFlight"], rows["stt"]["deadLetter"]) == (1, 0, 1)
    assert (rows["tts"]["visible"], rows["tts"]["inFlight"], rows["tts"]["deadLetter"]) == (0, 1, 0)
    table = CliRunner().invoke(main, ["queues"], env=sqs_env).stdout
    assert table.splitlines()[0].split() == ["queue", "broker", "name", "visible", "in", "flight", "dead", "letter"]


def test_cli_bootstrap_refuses_another_broker(tmp_path):
    result = CliRunner().invoke(
        main, ["sqs", "bootstrap"], env={"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_BROKER_URL": ""}
    )
    assert result.exit_code != 0 and "not sqs://" in result.output


def test_cli_queues_on_the_embedded_broker(tmp_path):
    from coachup.settings import load_settings
    from tests.support.services import EmbeddedBrokerServer

    env = {"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_BROKER_URL": ""}
    server = EmbeddedBrokerServer(load_settings(env))
    try:
        result = CliRunner().invoke(main, ["queues", "--json"], env=env)
    finally:
        server.close()
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["broker"] == "embedded" and body["deadLetters"]["depth"] == 0
    assert (body["deadLetters"]["stored"], body["deadLetters"]["inBroker"]) == (0, 0)
    assert [r["queue"] for r in body["queues"]] == ["assessments", "stt", "tts", "callbacks", "summaries", "deadletter"]
    # a real Redis: what a worker holds is known too (the filesystem transport could not tell)
    assert all(r["visible"] == 0 and r["inFlight"] == 0 for r in body["queues"])


def test_cli_refuses_to_wait_for_an_embedded_broker_nobody_started(tmp_path):
    result = CliRunner().invoke(main, ["worker"], env={"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_BROKER_URL": ""})
    assert result.exit_code != 0 and "coachup broker" in result.output


def test_flower_refuses_sqs_and_points_at_coachup_queues(tmp_path):
    result = CliRunner().invoke(
        main, ["flower", "--no-auth"], env={"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_BROKER_URL": "sqs://"}
    )
    assert result.exit_code != 0 and "coachup queues" in result.output
