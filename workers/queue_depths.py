"""Queue depths on the configured broker, for `coachup queues`: visible, in flight and dead-lettered.

SQS answers all three from its own counters (each queue and its DLQ). Redis gives the waiting messages and,
from kombu's `unacked` hash, those a worker holds; the embedded broker only knows what is waiting (a taken
message lives in the worker's memory). `None` means the broker cannot tell.
"""

from __future__ import annotations

import json

from coachup.sqs.admin import QueueDepth

__all__ = ["queue_depths"]

QUEUES = ("assessments", "stt", "tts", "summaries", "deadletter")


def queue_depths(app) -> list[QueueDepth]:
    """One `QueueDepth` per queue the system declares, on `app`'s broker."""
    settings = app.coachup.settings
    if settings.broker_kind == "sqs":
        from coachup.sqs.admin import depths

        return depths(settings)
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        in_flight = _redis_in_flight(channel) if settings.broker_kind == "redis" else None
        return [
            QueueDepth(
                q, q, int(channel._size(q)), (in_flight or {}).get(q, 0) if in_flight is not None else None, None
            )
            for q in QUEUES
        ]


def _redis_in_flight(channel) -> dict[str, int]:
    counts: dict[str, int] = {}
    with channel.conn_or_acquire() as client:
        for raw in client.hvals(channel.unacked_key):
            try:
                _payload, _exchange, routing_key = json.loads(raw)
            except (ValueError, TypeError):
                continue
            counts[routing_key] = counts.get(routing_key, 0) + 1
    return counts
