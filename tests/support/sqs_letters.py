"""Hand-made SQS dead-letter messages: the kombu envelope a Celery task message has on SQS."""

from __future__ import annotations

import base64
import json
import uuid

from coachup.sqs.admin import sqs_client
from coachup.sqs.names import sqs_queues

__all__ = ["celery_body", "put_dead_letter"]


def celery_body(task: str, task_id: str, args: list, **headers) -> str:
    """base64 JSON envelope with Celery protocol-2 headers and a base64 `[args, kwargs, embed]` body."""
    inner = base64.b64encode(json.dumps([args, {}, {}]).encode()).decode()
    envelope = {
        "body": inner,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"task": task, "id": task_id, "retries": 1, **headers},
        "properties": {"body_encoding": "base64", "delivery_tag": str(uuid.uuid4())},
    }
    return base64.b64encode(json.dumps(envelope).encode()).decode()


def put_dead_letter(
    settings, task: str, task_id: str, args: list, *, logical: str = "assessments", group: str = "s:one", **headers
) -> str:
    """Put one message straight into `logical`'s DLQ; return its MessageId."""
    client = sqs_client(settings)
    q = next(q for q in sqs_queues(settings) if q.logical == logical)
    url = client.get_queue_url(QueueName=q.dlq)["QueueUrl"]
    fifo = {"MessageGroupId": group, "MessageDeduplicationId": uuid.uuid4().hex} if q.fifo else {}
    return client.send_message(QueueUrl=url, MessageBody=celery_body(task, task_id, args, **headers), **fifo)[
        "MessageId"
    ]
