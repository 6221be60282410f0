"""Redis (and, through `embedded.py`, the embedded Redis): kombu's lists, its `unacked` hash, letters in the store.

- Depths: `LLEN` of each queue's lists (kombu keeps one per priority step) and, from the `unacked` hash,
  the messages a worker holds, per queue; one pipeline, through the app's own kombu connection.
- Dead letters: the `deadletter.record` task moves each letter into the store (`StoreDeadLetters`); the
  dead-letter depth is the stored letters plus the letters still on the `deadletter` queue.
- Requeue view: the job is neither held (unacked) nor younger than the oldest waiting message (lists are FIFO).
- Pop-window view: one MULTI/EXEC of the queue's waiting messages and the unacked hash (`workers/popwatch.py`).
- Redelivery: Redis marks a message requeued after its worker died `redelivered`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import datetime

from kombu.utils.encoding import bytes_to_str

from coachup.queues import DEADLETTER_QUEUE, DeadLetterDepth, QueueDepth

from .base import Broker, BrokerView

__all__ = ["RedisBroker", "priority_lists", "redis_counts", "redis_snapshot", "redis_view"]

_PRIORITY_SEP = "\x06\x16"  # kombu's `queue\x06\x16N` lists, one per priority step
_PRIORITY_STEPS = (3, 6, 9)  # step 0 is the bare queue name
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"  # kombu's delivery time of each unacked tag (a sorted set, time.time() scores)


def priority_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps for `queue`: the bare name (priority step 0), then one per step."""
    return [queue, *(f"{queue}{_PRIORITY_SEP}{step}" for step in _PRIORITY_STEPS)]


def _header(raw: bytes | str | None) -> tuple[str | None, int | None, str | None]:
    """(task id, enqueuedAtMs, routing key) of a kombu Redis message as stored in a list or `unacked`."""
    if not raw:
        return None, None, None
    try:
        payload = json.loads(raw)
    except ValueError:
        return None, None, None
    routing_key = None
    if isinstance(payload, list):  # unacked entries are [message, exchange, routing_key]
        routing_key = payload[2] if len(payload) > 2 and isinstance(payload[2], str) else None
        payload = payload[0] if payload else {}
    headers = (payload.get("headers") or {}) if isinstance(payload, dict) else {}
    stamp = headers.get("enqueuedAtMs")
    return headers.get("id"), int(stamp) if isinstance(stamp, (int, float)) else None, routing_key


def redis_counts(client, queues: Iterable[str]) -> tuple[dict[str, int], dict[str, int]]:
    """({queue: waiting}, {queue: held by a worker}) in one pipeline (garbage in `unacked` is skipped)."""
    queues = list(queues)
    pipe = client.pipeline()
    for q in queues:
        for key in priority_lists(q):
            pipe.llen(key)
    pipe.hvals(UNACKED)
    *sizes, unacked = pipe.execute()
    per = 1 + len(_PRIORITY_STEPS)
    waiting = {q: int(sum(sizes[i * per : (i + 1) * per])) for i, q in enumerate(queues)}
    held = dict.fromkeys(queues, 0)
    for raw in unacked:
        routing_key = _header(raw)[2]
        if routing_key in held:
            held[routing_key] += 1
    return waiting, held


def redis_view(client, queue: str) -> BrokerView:
    """One pipeline: the oldest message of each priority list, and every unacknowledged message."""
    pipe = client.pipeline()
    for key in priority_lists(queue):
        pipe.lindex(key, -1)
    pipe.hvals(UNACKED)
    *tails, unacked = pipe.execute()
    stamps = []
    for raw in tails:
        if raw is None:
            continue
        stamp = _header(raw)[1]
        stamps.append(stamp if stamp is not None else 0)  # an unstamped message: assume it is old
    held = frozenset(i for i in (_header(v)[0] for v in unacked) if i)
    return BrokerView(held_ids=held, oldest_waiting_ms=min(stamps) if stamps else None, exact=True)


#: the pop-window watch lists a queue's waiting messages up to this many; a longer queue gets the sweep's rule
SCAN_MAX = 2000
#: an unacked message delivered (and past its ETA) this long ago, whose job nobody started, was dropped by its
#: consumer (a broker connection reset clears a worker's taken messages); the watch treats it as lost
ORPHAN_AFTER_S = 60.0


def redis_snapshot(client, queue: str, scan_max: int = SCAN_MAX, orphan_after_s: float = ORPHAN_AFTER_S) -> BrokerView:
    """One MULTI/EXEC (one instant of the server): every waiting message of `queue` and every unacknowledged one.

    kombu moves a message between a list and `unacked` only in single commands or transactions (BRPOP, then the
    HSET; a restore's LPUSH + HDEL), so a message the snapshot finds in neither is one a consumer popped and has
    not recorded yet, or one that is gone. With more than `scan_max` waiting, `waiting_ids` is None and the
    view falls back to the sweep's rule (older than the oldest waiting message). An unacked entry its consumer
    can no longer be holding (`_orphaned`) is left out of `held_ids`."""
    pipe = client.pipeline(transaction=True)
    keys = priority_lists(queue)
    for key in keys:
        pipe.llen(key)
        pipe.lrange(key, 0, scan_max - 1)
        pipe.lindex(key, -1)
    pipe.hgetall(UNACKED)
    pipe.zrange(UNACKED_INDEX, 0, -1, withscores=True)
    pipe.time()
    *per_key, unacked, delivered, server_time = pipe.execute()
    waiting: set[str] | None = set()
    stamps = []
    for i in range(len(keys)):
        length, items, tail = per_key[3 * i : 3 * i + 3]
        if tail is not None:
            stamp = _header(tail)[1]
            stamps.append(stamp if stamp is not None else 0)
        if waiting is None or int(length) > scan_max:
            waiting = None
            continue
        waiting.update(tid for tid in (_header(raw)[0] for raw in items) if tid)
    now = float(server_time[0]) + float(server_time[1]) / 1e6
    delivered_at = {bytes_to_str(tag): float(score) for tag, score in delivered}
    held: set[str] = set()
    orphaned: dict[str, tuple[str, ...]] = {}
    for raw_tag, raw in unacked.items():
        tag, task_id = bytes_to_str(raw_tag), _header(raw)[0]
        if not task_id:
            continue
        if _orphaned(raw, delivered_at.get(tag), now, orphan_after_s):
            orphaned[task_id] = (*orphaned.get(task_id, ()), tag)
        else:
            held.add(task_id)
    return BrokerView(
        held_ids=frozenset(held),
        oldest_waiting_ms=min(stamps) if stamps else None,
        exact=True,
        waiting_ids=frozenset(waiting) if waiting is not None else None,
        orphaned=orphaned,
    )


def _orphaned(raw: bytes | str, delivered_at: float | None, now: float, orphan_after_s: float) -> bool:
    """An unacked entry no consumer still holds: delivered over `orphan_after_s` ago and past its ETA by as much.

    A worker starts what it took at once (late ack with prefetch 1 counts a running task against the prefetch,
    so nothing waits behind it) and holds a message only until its ETA (a retry's countdown). A consumer whose
    broker connection broke drops what it took, and kombu returns that entry only after the visibility timeout
    (an hour); the caller asks about jobs whose row says nobody started them. An entry without a delivery time,
    or with an ETA it cannot read, counts as held."""
    if delivered_at is None or now - delivered_at < orphan_after_s:
        return False
    try:
        message = json.loads(raw)[0]
        eta = (message.get("headers") or {}).get("eta")
        eta_s = datetime.fromisoformat(eta).timestamp() if eta else None
    except (ValueError, TypeError, AttributeError, IndexError, KeyError):
        return False
    return eta_s is None or now - eta_s >= orphan_after_s


class RedisBroker(Broker):
    """`COACHUP_BROKER_URL=redis://…` (or `rediss://`)."""

    name = "redis"
    pop_window = True

    @property
    def result_backend(self) -> str:
        return self.settings.result_backend or self.url  # the broker doubles as the result backend

    def celery_options(self) -> dict:
        vt = self.settings.visibility_timeout_s
        return {
            "broker_transport_options": {
                "visibility_timeout": vt,
                # connect timeout bounds a publish while Redis is down (the outbox relay retries; no request waits on it)
                "socket_connect_timeout": 1,
                "socket_timeout": 5,
                "health_check_interval": 10,
                "retry_on_timeout": True,
                # sweep the unacked set every ~10 s (kombu's default is ~100 s): a message orphaned by a lost
                # connection (a Redis restart mid-task) is back soon after its visibility timeout
                "unacked_restore_interval": 10,
                "unacked_restore_throttle": 1,
            },
            "result_backend_transport_options": {"visibility_timeout": vt},
            "redis_socket_connect_timeout": 1,
            "redis_socket_timeout": 5,
        }

    def install(self, app) -> None:
        # kombu picks the transport from the URL's scheme (`redis+socket://` included), so the guarded channel
        # (workers/brokers/guarded_redis.py) is registered as the `redis` transport itself
        from kombu.transport import TRANSPORT_ALIASES

        from .guarded_redis import TRANSPORT

        TRANSPORT_ALIASES["redis"] = TRANSPORT

    def _client(self, app):
        """A redis-py client over the app's own broker connection (TCP or Unix socket alike)."""
        conn = app.connection_for_read()
        conn.ensure_connection(max_retries=1, timeout=app.conf.broker_connection_timeout)
        return conn, conn.default_channel

    @contextmanager
    def _redis(self, app):
        """A redis-py client over the app's broker connection, released after the block."""
        conn, channel = self._client(app)
        try:
            with channel.conn_or_acquire() as client:
                yield client
        finally:
            conn.release()

    def quarantine_client(self, app):
        return self._redis(app)

    def queue_depths(self, app, queues: Iterable[str]) -> list[QueueDepth]:
        with self._redis(app) as client:
            waiting, held = redis_counts(client, queues)
        return [QueueDepth(q, q, waiting[q], held[q], None) for q in waiting]

    def dead_letters(self, store):
        from coachup.store.deadletters import StoreDeadLetters

        return StoreDeadLetters(store)

    def dead_letter_depth(self, rows: list[QueueDepth], store) -> DeadLetterDepth:
        # letters still on their way to the store (the recorder is behind, or the store is down) count too
        transit = sum((r.visible or 0) + (r.in_flight or 0) for r in rows if r.queue == DEADLETTER_QUEUE)
        return DeadLetterDepth(stored=self.dead_letters(store).depth(), in_broker=transit)

    def requeue_view(self, app, queue: str) -> BrokerView:
        with self._redis(app) as client:
            return redis_view(client, queue)

    def pop_window_view(self, app, queue: str) -> BrokerView | None:
        with self._redis(app) as client:
            return redis_snapshot(client, queue)

    def drop_orphans(self, app, tags) -> None:
        tags = list(tags)
        if not tags:
            return
        # one MULTI/EXEC, as kombu's own ack (HDEL + ZREM); an entry kombu restored or acked meanwhile is already
        # gone, and these are no-ops
        with self._redis(app) as client:
            pipe = client.pipeline(transaction=True)
            pipe.hdel(UNACKED, *tags)
            pipe.zrem(UNACKED_INDEX, *tags)
            pipe.execute()
