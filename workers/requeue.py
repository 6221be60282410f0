"""Find assessment jobs whose message the broker lost, and publish them again.

The job row is the ledger: a job is `queued` from the moment its row is written until a worker starts it.
A message can still go missing between the two: kombu's Redis transport pops a message (BRPOP) and only then
records it in its `unacked` hash, so a Redis restart in that instant drops it; an API process killed
between writing the row and publishing leaves a row with no message at all. Nothing in the broker would
ever bring such a job back.

The scheduler's sweep calls `requeue_lost_assessments`. A job counts as lost only when it has sat `queued`
and untouched for `COACHUP_REQUEUE_AFTER_S` *and* the broker shows it cannot still hold its message:

- Redis: the job is not among the messages in kombu's `unacked` hash, and it was queued before the oldest
  message still waiting in the queue (the lists are FIFO, so everything published earlier was popped).
- SQS and the embedded broker: the queue holds nothing at all, visible or in flight.

A job is claimed (its `updated_at` bumped on the condition that it is still `queued` and unchanged) before it
is published again, so two sweepers cannot both publish it; and should a stray copy of a message appear
anyway, the task stores one result per group, so a second run writes nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from coachup.context import RequestContext, new_request_id
from coachup.metrics.queue_depth import priority_lists

from .enqueue import ASSESS_TASK, BrokerUnavailable, publish
from .events import job_requeued
from .sqs_options import fifo_publish_options

__all__ = ["BrokerView", "broker_view", "requeue_lost_assessments", "CLOCK_MARGIN_S"]

#: API hosts' clocks and the time between writing a row and publishing its message; a job counts as older
#: than the oldest waiting message only by more than this
CLOCK_MARGIN_S = 5.0


@dataclass(frozen=True)
class BrokerView:
    """What the broker can still hold for one queue, as far as the requeue rule needs to know."""

    held_ids: frozenset[str] = frozenset()  # task ids taken by a worker but not acknowledged (Redis)
    oldest_waiting_ms: int | None = None  # publish time of the oldest waiting message (Redis); None: empty
    empty: bool = False  # nothing waiting and nothing in flight (SQS, embedded)
    exact: bool = False  # True on Redis: `held_ids` and `oldest_waiting_ms` are known

    def may_hold(self, job_id: str, queued_at: datetime) -> bool:
        """True when the broker could still deliver `job_id`'s message (then leave it alone)."""
        if self.exact:
            if job_id in self.held_ids:
                return True
            if self.oldest_waiting_ms is None:
                return False
            return queued_at.timestamp() * 1000 >= self.oldest_waiting_ms - CLOCK_MARGIN_S * 1000
        return not self.empty


def _task_id(raw: bytes | str | None) -> tuple[str | None, int | None]:
    """(task id, enqueuedAtMs) of one kombu Redis message as stored in a list or the unacked hash."""
    if not raw:
        return None, None
    try:
        payload = json.loads(raw)
    except ValueError:
        return None, None
    if isinstance(payload, list):  # unacked entries are [message, exchange, routing_key]
        payload = payload[0] if payload else {}
    headers = (payload.get("headers") or {}) if isinstance(payload, dict) else {}
    stamp = headers.get("enqueuedAtMs")
    return headers.get("id"), int(stamp) if isinstance(stamp, (int, float)) else None


def redis_view(client, queue: str) -> BrokerView:
    """One pipeline: the oldest message of each priority list, and every unacknowledged message."""
    pipe = client.pipeline()
    for key in priority_lists(queue):
        pipe.lindex(key, -1)
    pipe.hvals("unacked")
    *tails, unacked = pipe.execute()
    stamps = []
    for raw in tails:
        if raw is None:
            continue
        _, stamp = _task_id(raw)
        stamps.append(stamp if stamp is not None else 0)  # an unstamped message: assume it is old
    held = frozenset(i for i in (_task_id(v)[0] for v in unacked) if i)
    return BrokerView(held_ids=held, oldest_waiting_ms=min(stamps) if stamps else None, exact=True)


def broker_view(settings, queue: str) -> BrokerView:
    """The configured broker's view of `queue` (raises the client's error when the broker is down)."""
    if settings.broker_kind == "redis":
        import redis

        client = redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            return redis_view(client, queue)
        finally:
            client.close()
    from coachup.metrics.queue_depth import read_depths

    waiting, in_flight = read_depths(settings, [queue])
    return BrokerView(empty=waiting.get(queue, 0) == 0 and in_flight.get(queue, 0) == 0)


def requeue_lost_assessments(app, store, hasher, *, view: BrokerView | None = None,
                             now: datetime | None = None, limit: int = 200) -> int:
    """Publish again every assessment job the broker lost; the number published."""
    settings = app.coachup.settings
    now = now or datetime.now(timezone.utc)
    candidates = store.queued_jobs_idle_since("assessment", now - timedelta(seconds=settings.requeue_after_s),
                                              limit=limit)
    if not candidates:
        return 0
    # read the broker after the rows: a job popped meanwhile is in `unacked` or already `running`
    view = view or broker_view(settings, "assessments")
    published = 0
    for job in candidates:
        if view.may_hold(job["id"], job["updatedAt"]) or not store.claim_requeue(job["id"], job["seen"]):
            continue
        ctx = RequestContext(requestId=job["requestId"] or new_request_id())
        headers = ctx.with_(sessionIdHash=hasher.session(job["sessionId"]),
                            groupId=hasher.group(job["groupId"])).to_headers()
        fifo = fifo_publish_options(settings, hasher, job["sessionId"], job["groupId"])
        if fifo:  # a fresh dedup id: SQS would drop a copy of the original's within its 5-minute window
            fifo["MessageDeduplicationId"] += f":q{int(time.time())}"
        try:
            publish(app, ASSESS_TASK, task_id=job["id"], args=[job["id"]], headers=headers, **fifo)
        except BrokerUnavailable:
            break  # the row stays queued; the next sweep finds it again
        published += 1
        job_requeued.send(sender=app, kind="assessment", queue="assessments", headers=headers,
                          idle_s=round((now - job["updatedAt"]).total_seconds(), 1))
    return published
