"""The pop-window watch: a message a consumer popped and never recorded is published again within seconds.

kombu's Redis transport takes a message with BRPOP and only then writes it to its `unacked` hash; a consumer
killed in between (or a Redis restart) drops it, while its job row still says `queued`. The requeue sweep
(`workers/requeue.py`) finds such a job after `COACHUP_REQUEUE_AFTER_S` (5 minutes by default), because it
cannot see which messages the broker holds. On Redis it can: `Broker.pop_window_view` is one MULTI/EXEC of the
queue's waiting messages and the unacked hash (`workers/brokers/redis.py::redis_snapshot`).

The scheduler (`workers/beat_lease.py`, only while it holds the scheduler lease) looks every
`COACHUP_POP_WATCH_S` (2 s) at the published jobs of every requeued kind that are still `queued`:

1. the job rows first, then the broker's snapshot (a job taken meanwhile is then held, or its row has moved on);
2. a job whose message is in no list of its queue and not held is a *suspect* (an `unacked` entry delivered over
   `redis.ORPHAN_AFTER_S` ago and past its ETA is not held: its consumer dropped it, see `redis_snapshot`),
   remembered with its row's `updated_at`;
3. a suspect seen so again on the next look, at least one period later, with its row unchanged (same `updated_at`:
   not started, not retried, not republished by anyone) is lost: it is claimed (`Store.claim_requeue`, so a
   concurrent sweep cannot publish it too) and published again, logged `job_requeued` with reason `pop_window`.
   An orphaned `unacked` entry of that job is then removed (`Broker.drop_orphans`): left, it would count as a
   message in flight until kombu's visibility timeout (an hour) restored it for a no-op run.

Two looks a period apart rule out the one instant a snapshot can catch a healthy message in neither place (popped,
not yet in `unacked`: milliseconds) and a job that ran to the end between the row read and the snapshot (its row
says `done` on the next look). Should a false positive happen anyway, the job's run lease (`workers/run_lease.py`)
defers the second copy while the first runs, and a copy of a finished job is a no-op: never run twice.

A queue longer than `redis.SCAN_MAX` is not listed; for it the watch uses the sweep's rule (the job is older than the
oldest waiting message), so a lost message there is found once the queue has drained past it. Brokers without an
exact view (SQS) have no watch; their in-flight messages return after the visibility timeout anyway.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from coachup.jobs import requeued_kinds
from coachup.logs import log_event

from .publish import BrokerUnavailable
from .requeue import republish

__all__ = ["PopWatch", "REASON"]

log = logging.getLogger("coachup.beat")
REASON = "pop_window"


@dataclass(frozen=True)
class _Suspect:
    seen: datetime  # the row's `updated_at` as read at the first look
    at: float  # monotonic time of the first look


class PopWatch:
    """The scheduler's watch; `maybe_look()` on every tick looks when a period has passed since the last look."""

    def __init__(self, app, *, period_s: float, limit: int = 200) -> None:
        self.app = app
        self.period_s = period_s
        self.limit = limit
        self._suspects: dict[str, _Suspect] = {}
        self._next = 0.0

    @property
    def enabled(self) -> bool:
        return self.period_s > 0 and self.app.coachup.broker.pop_window

    def seconds_to_next(self) -> float:
        return max(0.0, self._next - time.monotonic())

    def maybe_look(self) -> int:
        """Look if due (never raises: a broken store or broker waits for the next look); jobs published again."""
        if not self.enabled or time.monotonic() < self._next:
            return 0
        self._next = time.monotonic() + self.period_s
        try:
            return self.look()
        except Exception as exc:
            log_event(log, "pop_watch_error", logging.WARNING, error={"type": type(exc).__name__})
            return 0

    def look(self, *, now: datetime | None = None) -> int:
        """One look over every requeued kind; the number of jobs published again."""
        rt = self.app.coachup
        now = now or datetime.now(UTC)
        mono = time.monotonic()
        published = 0
        suspects: dict[str, _Suspect] = {}
        for kind in requeued_kinds():
            rows = rt.store.queued_jobs_idle_since(kind.name, now, limit=self.limit)
            if not rows:
                continue
            view = rt.broker.pop_window_view(self.app, kind.queue)  # after the rows (see the module docstring)
            if view is None:
                self._suspects = {}
                return 0
            for job in rows:
                if view.may_hold(job["id"], job["updatedAt"]):
                    continue
                first = self._suspects.get(job["id"])
                if first is None or first.seen != job["seen"]:
                    suspects[job["id"]] = _Suspect(job["seen"], mono)
                    continue
                if mono - first.at < self.period_s * 0.9 or not rt.store.claim_requeue(job["id"], job["seen"]):
                    suspects[job["id"]] = first
                    continue
                try:
                    republish(self.app, rt.hasher, kind, job, now=now, reason=REASON)
                except BrokerUnavailable:
                    self._suspects = {}
                    return published
                published += 1
                if stale := view.orphaned.get(job["id"]):  # the stale copy goes: the broker holds the new one only
                    try:
                        rt.broker.drop_orphans(self.app, stale)
                    except Exception as exc:  # kombu restores it after the visibility timeout: a no-op run
                        log_event(log, "pop_watch_error", logging.WARNING, error={"type": type(exc).__name__})
        self._suspects = suspects
        return published
