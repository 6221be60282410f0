"""Queue depths from the broker (Redis lists, embedded folder), for the ops API and a depth gauge."""

from __future__ import annotations

from kombu.exceptions import ChannelError

__all__ = ["queue_depths"]


def queue_depths(app, names) -> dict[str, int]:
    """Messages waiting (not reserved by a worker) in each queue; raises when the broker is unreachable."""
    depths = {}
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=app.conf.broker_connection_timeout)
        channel = conn.default_channel
        for name in names:
            try:
                depths[name] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except ChannelError:  # Redis forgets an empty list: no key, no messages
                depths[name] = 0
    return depths
