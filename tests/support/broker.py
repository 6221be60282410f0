"""What a Redis broker (the embedded one included) holds: the raw messages waiting on its queues."""

from __future__ import annotations

import json

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
