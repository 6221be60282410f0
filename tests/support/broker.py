"""What a Redis broker (the embedded one included) holds: the raw messages waiting on its queues; and the
envelope Celery publishes, for tests that put hand-made messages on a queue."""

from __future__ import annotations

import json
import uuid

from coachup.jobs import queue_names
from workers.brokers.redis import priority_lists


def waiting_messages(celery_app, queues=None) -> list[str]:
    """Every message waiting on `queues` (default: all), oldest first, as kombu stored it (JSON text)."""
    out: list[str] = []
    with celery_app.connection_for_read() as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as client:
            for queue in queues or queue_names():
                for key in priority_lists(queue):
                    out += [raw.decode() for raw in reversed(client.lrange(key, 0, -1))]
    return out


def waiting_envelopes(celery_app, queues=None) -> list[dict]:
    """The same messages, parsed."""
    return [json.loads(raw) for raw in waiting_messages(celery_app, queues)]


def celery_envelope(queue: str, body: str, *, task_id: str | None = None) -> dict:
    """A kombu message envelope as Celery publishes it to `queue`, with `body` (already encoded) as its body;
    `task_id` adds the task headers. The Redis transport stores it as JSON; SQS's base64-encodes that JSON."""
    headers = {"id": task_id, "task": "assessments.run", "lang": "py"} if task_id else {}
    return {
        "body": body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            "body_encoding": "base64",
            "delivery_info": {"exchange": queue, "routing_key": queue},
            "delivery_mode": 2,
            "priority": 0,
            "delivery_tag": str(uuid.uuid4()),
        },
    }
