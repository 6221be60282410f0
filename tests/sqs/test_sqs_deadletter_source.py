"""`SqsDeadLetters` against the moto server with hand-made DLQ messages (no worker): decoding, order,
a failing send, purge and depth."""

from __future__ import annotations

import json
import uuid

import pytest

from coachup.sqs.admin import bootstrap, sqs_client
from coachup.sqs.deadletters import SqsDeadLetters
from coachup.sqs.letters import letter_from_message
from coachup.sqs.names import sqs_queues
from tests.support.sqs_letters import put_dead_letter


@pytest.fixture
def dlq(sqs_settings):
    bootstrap(sqs_settings)

    def put(task="assessments.run", group="s:one", **headers) -> str:
        task_id = str(uuid.uuid4())
        put_dead_letter(sqs_settings, task, task_id, [task_id], group=group, **headers)
        return task_id

    return SqsDeadLetters(sqs_settings), put


def test_a_dlq_message_becomes_a_letter_with_safe_headers_only(dlq):
    source, put = dlq
    task_id = put(requestId="r-1", traceparent="00-abc-def-01", redriveCount=1, userId="raw-user-id")

    [letter] = source.list()

    assert (letter.task, letter.task_id, letter.args, letter.queue) == (
        "assessments.run",
        task_id,
        [task_id],
        "assessments",
    )
    assert letter.headers == {"requestId": "r-1", "traceparent": "00-abc-def-01", "redriveCount": 1}
    assert letter.redrives == 1 and letter.group_id == "s:one" and letter.error_type == "unknown"
    assert letter.attempts == 1 + source._settings.sqs_max_receive_count
    assert "raw-user-id" not in json.dumps(letter.to_dict())


def test_listing_is_newest_first_filtered_and_consumes_nothing(dlq):
    source, put = dlq
    ids = [put(group=f"s:{i}", task="stt.transcribe" if i == 1 else "assessments.run") for i in range(3)]

    listed = source.list()
    assert sorted(x.task_id for x in listed) == sorted(ids)
    sent_at = [x.first_failure_at for x in listed]
    assert sent_at == sorted(sent_at, reverse=True)  # newest first (SentTimestamp)
    assert [x.task_id for x in source.list(task="stt.*")] == [ids[1]]
    mine = source.list(task="assessments.run")
    assert len(mine) == 2 and source.list(task="assessments.run", limit=1) == mine[:1]
    assert source.depth() == 3 and len(source.list()) == 3  # visible again at once


def test_a_send_that_fails_leaves_the_letter_in_the_dlq(dlq):
    source, put = dlq
    put()
    [letter] = source.list()

    def send(_letter):
        raise ConnectionError("queue down")

    with pytest.raises(ConnectionError):
        source.redrive([letter], send)

    assert [x.id for x in source.list()] == [letter.id]  # released, not deleted
    sent = []
    assert source.redrive([letter], sent.append) == [letter.id] and sent == [letter]
    assert source.list() == [] and source.depth() == 0


def test_purge_deletes_every_letter(dlq):
    source, put = dlq
    for i in range(12):
        put(group=f"s:{i}")
    assert source.purge() == 12
    assert source.depth() == 0 and source.purge() == 0


def test_a_message_that_is_not_a_celery_message_is_shown_never_redriven(dlq, sqs_settings):
    letter = letter_from_message(
        {"MessageId": "m-1", "Body": "%%not base64 nor json%%", "Attributes": {}},
        "stt",
        max_receive_count=3,
        max_redrives=2,
    )
    assert (letter.id, letter.task, letter.task_id, letter.queue) == ("m-1", "(undecodable)", "", "stt")

    source, _put = dlq
    client = sqs_client(sqs_settings)
    q = next(q for q in sqs_queues(sqs_settings) if q.logical == "stt")
    client.send_message(QueueUrl=client.get_queue_url(QueueName=q.dlq)["QueueUrl"], MessageBody="{not json")
    [odd] = source.list()
    sent = []
    assert odd.task == "(undecodable)" and source.redrive([odd], sent.append) == [] and sent == []
    assert source.depth() == 1  # stays for an operator to read and purge


def test_the_ops_api_answers_503_when_sqs_is_unreachable(sqs_env):
    from coachup.settings import load_settings
    from tests.support.services import refused_port
    from web import create_app

    token = uuid.uuid4().hex
    settings = load_settings(
        {**sqs_env, "AWS_ENDPOINT_URL_SQS": f"http://127.0.0.1:{refused_port()}", "COACHUP_ADMIN_TOKEN": token}
    )
    client = create_app(settings, configure_logs=False).test_client()

    resp = client.get("/api/v1/ops/deadletters", headers={"authorization": f"Bearer {token}"})

    assert resp.status_code == 503 and resp.get_json()["error"]["type"] == "deadletters_unavailable"


def test_dlq_commands_say_when_sqs_is_unreachable(sqs_env, monkeypatch):
    from click.testing import CliRunner

    from coachup.cli import main
    from tests.support.services import refused_port

    for key, value in {**sqs_env, "AWS_ENDPOINT_URL_SQS": f"http://127.0.0.1:{refused_port()}"}.items():
        monkeypatch.setenv(key, value)
    for args in (["ls"], ["show", "m-1"], ["purge", "--yes"]):
        result = CliRunner().invoke(main, ["dlq", *args])
        assert result.exit_code == 1 and "dead-letter queue unreachable" in result.output, result.output
