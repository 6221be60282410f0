"""`workers.deadletter.redrive_sender` on SQS (moto): a redriven letter goes back to its FIFO queue in its own
message group, with a fresh deduplication id (the broker's `redrive_options` of that very letter)."""

from __future__ import annotations

import base64
import json

from coachup.deadletters import DeadLetter
from coachup.sqs.admin import bootstrap, sqs_client
from coachup.sqs.names import sqs_queues


def test_a_redriven_letter_keeps_its_message_group_on_the_fifo_queue(sqs_settings):
    from workers import create_celery
    from workers.deadletter import redrive_sender

    bootstrap(sqs_settings)
    app = create_celery(sqs_settings)
    letter = DeadLetter(
        id="t-1.0",
        task_id="t-1",
        task="assessments.run",
        queue="assessments",
        reason="permanent",
        error_type="provider_rejected",
        error_message="provider said 400",
        attempts=1,
        first_failure_at="2026-11-30T00:00:00.000Z",
        last_failure_at="2026-11-30T00:00:00.000Z",
        args=["t-1"],
        headers={"requestId": "r-1"},
        group_id="s:group-1",
    )
    redrive_sender(app)(letter)

    queue = next(q for q in sqs_queues(sqs_settings) if q.logical == "assessments")
    client = sqs_client(sqs_settings)
    url = client.get_queue_url(QueueName=queue.name)["QueueUrl"]
    [message] = client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageSystemAttributeNames=["All"]
    )["Messages"]
    assert message["Attributes"]["MessageGroupId"] == "s:group-1"
    assert message["Attributes"]["MessageDeduplicationId"]
    envelope = json.loads(base64.b64decode(message["Body"]))
    assert (envelope["headers"]["id"], envelope["headers"]["redriveCount"]) == ("t-1", 1)
