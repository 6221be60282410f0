"""Find jobs (assessment, STT, TTS) whose message the broker lost, and publish them again.

The job row is the ledger: a job is `queued` from the moment its row is written until a worker starts it.
A message can still go missing between the two: kombu's Redis transport pops a message (BRPOP) and only then
records it in its `unacked` hash, so a Redis restart in that instant drops it; an API process killed
between writing the row and publishing leaves a row with no message at all. Nothing in the broker would
ever bring such a job back.

The scheduler's sweep calls `requeue_lost_jobs`. A job counts as lost only when it has sat `queued`
and untouched for `COACHUP_REQUEUE_AFTER_S` *and* the broker shows it cannot still hold its message:

- Redis: the job is not among the messages in kombu's `unacked` hash, and it was queued before the oldest
  message still waiting in the queue (the lists are FIFO, so everything published earlier was popped).
- SQS and the embedded broker: the queue holds nothing at all, visible or in flight.

A job is claimed (its `updated_at` bumped on the condition that it is still `queued` and unchanged) before it
is published again, so two sweepers cannot both publish it; and should a stray copy of a message appear
anyway, the assessment task stores one result per group and a speech task skips a job that is done, so a
second run writes nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from coachup.context import RequestContext, new_request_id
from coachup.metrics.queue_depth import priority_lists

from .enqueue import ASSESS_TASK, BrokerUnavailable, assessment_message, publish
from .events import job_requeued

__all__ = ["BrokerView", "broker_view", "requeue_lost_jobs", "REQUEUED_KINDS", "CLOCK_MARGIN_S"]

#: job kinds whose lost messages the sweep publishes again (each on its own queue: `assessments`, `stt`, `tts`)
REQUEUED_KINDS = ("assessment", "stt", "tts", "summary")

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


def requeue_lost_jobs(app, store, hasher, *, now: datetime | None = None, limit: int = 200) -> int:
    """Publish again every assessment, STT and TTS job the broker lost; the number published."""
    published = 0
    for kind in REQUEUED_KINDS:
        count, broker_down = _requeue_kind(app, store, hasher, kind, now=now, limit=limit)
        published += count
        if broker_down:
            break  # the rows stay queued; the next sweep finds them again
    return published


def _requeue_kind(app, store, hasher, kind: str, *, now: datetime | None, limit: int) -> tuple[int, bool]:
    """(jobs of `kind` published again, whether the broker refused a publish)."""
    settings = app.coachup.settings
    queue, task = _route(kind)
    now = now or datetime.now(UTC)
    candidates = store.queued_jobs_idle_since(kind, now - timedelta(seconds=settings.requeue_after_s), limit=limit)
    if not candidates:
        return 0, False
    # read the broker after the rows: a job popped meanwhile is in `unacked` or already `running`
    view = broker_view(settings, queue)
    published = 0
    for job in candidates:
        if view.may_hold(job["id"], job["updatedAt"]) or not store.claim_requeue(job["id"], job["seen"]):
            continue
        headers, options = _message(settings, hasher, kind, job)
        try:
            publish(app, task, task_id=job["id"], args=[job["id"]], headers=headers, **options)
        except BrokerUnavailable:
            return published, True
        published += 1
        job_requeued.send(
            sender=app,
            kind=kind,
            queue=queue,
            headers=headers,
            idle_s=round((now - job["updatedAt"]).total_seconds(), 1),
        )
    return published, False


def _route(kind: str) -> tuple[str, str]:
    """(queue, task name) of a job kind."""
    if kind == "assessment":
        return "assessments", ASSESS_TASK
    if kind == "summary":
        from .summary_enqueue import SUMMARY_QUEUE, SUMMARY_TASK

        return SUMMARY_QUEUE, SUMMARY_TASK
    from .speech_enqueue import SPEECH_TASKS

    return kind, SPEECH_TASKS[kind]


def _message(settings, hasher, kind: str, job: dict) -> tuple[dict, dict]:
    """The headers and publish options the job's first message had (the same request id)."""
    ctx = RequestContext(requestId=job["requestId"] or new_request_id())
    if kind == "summary":
        from .summary_enqueue import summary_headers

        return summary_headers(ctx, hasher, job["sessionId"]), {}
    if kind != "assessment":
        from .speech_enqueue import speech_headers

        return speech_headers(ctx, hasher, job["params"], job["sessionId"], job["groupId"]), {}
    headers, fifo = assessment_message(settings, hasher, ctx, job["sessionId"], job["groupId"])
    if fifo:  # a fresh dedup id: SQS would drop a copy of the original's within its 5-minute window
        fifo["MessageDeduplicationId"] += f":q{int(time.time())}"
    return headers, fifo
