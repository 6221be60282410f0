"""The outbox relay: publishes job rows the store holds unpublished (`coachup.store.outbox`).

Three places run it, all through `relay_pass` (claim, publish, mark; two relays never publish one row inside
a lease):

- the API: one background thread per process (`OutboxRelay`, started by `install_relay`), woken by `notify`
  right after a request committed its job row, so a job is on the broker milliseconds later while the request
  has already answered. A wake within `_COALESCE_S` (10 ms) of the last pass's start waits out the rest, so
  under load one pass claims, publishes and marks many rows (a pass's fixed cost was most of the API's CPU
  when every request paid for one); an idle relay publishes at once. A hung or dead broker only holds this thread; it retries with backoff (from
  `COACHUP_OUTBOX_RETRY_S`, doubling to 30 s) until everything it saw is published, then sleeps until woken.
- the workers: a task that writes a follow-on job (the finalize callback, the sweep's assessments) publishes
  it inline after its commit (`notify` without a relay thread); a refused publish leaves the row to the next
  pass.
- the scheduler's `jobs.requeue` tick (every `COACHUP_IDLE_SWEEP_S`): one pass over every pending row, so rows
  left by an API process that died before its thread published them go out within one tick.

Stopping: `OutboxRelay.stop` (every relay of the process: `stop_relays`, run at interpreter exit, by gunicorn's
`worker_exit` and Celery's `worker_shutdown`) ends the thread between passes; a pass under way finishes the row it
is publishing and releases the rows it claimed but did not publish, so nothing is lost: every unpublished row
stays in the outbox for the next relay (another API process, or the scheduler's tick).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from coachup import context
from coachup.context import RequestContext
from coachup.jobs import JobRef, job_kind
from coachup.logs import log_event
from coachup.redaction import Hasher
from coachup.store import Store, outbox
from coachup.store.models import utcnow

from .publish import BrokerUnavailable, job_message, publish

__all__ = ["RelayPass", "relay_pass", "publish_row", "OutboxRelay", "install_relay", "notify", "relays", "stop_relays"]

log = logging.getLogger("coachup.relay")
_MAX_BACKOFF_S = 30.0
_COUNT_EVERY_S = 1.0  # the backlog gauge's count, at most this often while passes keep publishing
_BATCH = 100
# a wake less than this after the last pass began waits out the rest, so under load one pass carries every row
# committed meanwhile (a pass's claim, mark and pool checkouts cost about 2 ms of CPU, a row's publish about
# 0.5 ms: one pass per job spent most of the API's CPU on the relay); an idle relay's first wake runs at once
_COALESCE_S = 0.01


@dataclass(frozen=True)
class RelayPass:
    """What one pass did: messages published, rows left for later, whether the broker refused."""

    published: int = 0
    deferred: int = 0
    broker_down: bool = False


def publish_row(app, hasher: Hasher, row: outbox.OutboxRow) -> None:
    """Publish one claimed row's message with the request context stored with it."""
    kind = job_kind(row.kind)
    headers = dict(row.context)
    if row.request_id:
        headers["requestId"] = row.request_id
    ctx = RequestContext.from_headers(headers)
    message_headers, options = job_message(app, hasher, kind, ctx, JobRef(row.session_id, row.group_id, row.params))
    with context.use(ctx):  # the publish's log line (`assessments_enqueue`) carries the request's ids
        publish(app, kind.task, task_id=row.id, args=[row.id], headers=message_headers, **options)


def relay_pass(
    app,
    store: Store,
    hasher: Hasher,
    *,
    job_ids: list[str] | None = None,
    limit: int = _BATCH,
    metrics=None,
    stopping: Callable[[], bool] | None = None,
) -> RelayPass:
    """Claim up to `limit` unpublished rows (only `job_ids` when given), publish them, mark them published.

    When the broker refuses one, that row and the rest of the batch are released until the retry time. The rows
    published are marked together at the end of the pass (one UPDATE), also when a later one failed.
    When `stopping()` turns true, the rows not yet published are released at once (claimable by the next relay).
    Raises only what the store raises (the caller logs it and tries again).
    """
    settings = app.coachup.settings
    metrics = metrics if metrics is not None else _metrics(app)
    with outbox.connection(store) as conn:  # one checkout for the pass; each statement commits on its own
        rows = outbox.claim(store, lease_s=settings.outbox_lease_s, limit=limit, job_ids=job_ids, conn=conn)
        sent: list[outbox.OutboxRow] = []
        try:
            for i, row in enumerate(rows):
                if stopping is not None and stopping():
                    outbox.release_all(store, [r.id for r in rows[i:]], retry_at=utcnow(), conn=conn)
                    return RelayPass(len(sent), len(rows) - i, False)
                try:
                    publish_row(app, hasher, row)
                except BrokerUnavailable as exc:
                    retry_at = utcnow() + timedelta(seconds=settings.outbox_retry_s)
                    outbox.release_all(store, [r.id for r in rows[i:]], retry_at=retry_at, conn=conn)
                    if metrics is not None:
                        metrics.record_outbox_publish("error", None)
                    log_event(log, "outbox_publish_deferred", logging.WARNING, reason=str(exc), pending=len(rows) - i)
                    return RelayPass(len(sent), len(rows) - i, True)
                sent.append(row)
        finally:
            # every row the broker took leaves the outbox in one UPDATE (a crash before it: the lease expires and
            # the row is published again, as for a crash between a publish and its mark; every job kind is
            # idempotent)
            now = utcnow()
            outbox.mark_all_published(store, [r.id for r in sent], now=now, conn=conn)
            if metrics is not None:
                for row in sent:
                    metrics.record_outbox_publish("ok", max(0.0, (now - row.created_at).total_seconds()))
    return RelayPass(len(sent), 0, False)


def _metrics(app):
    try:
        from .metrics_host import metrics_for

        return metrics_for(app)
    except Exception:  # metrics never stop a publish
        return None


#: every relay of this process, for `stop_relays` (weak: an app dropped by a test takes its relay with it)
_RELAYS: weakref.WeakSet[OutboxRelay] = weakref.WeakSet()


class OutboxRelay:
    """The API process's relay thread: started on the first `wake` in each process (after a fork too).

    `stop` ends it between passes; a `wake` after a stop starts a new thread (an app that serves again).
    """

    def __init__(self, app, store: Store, hasher: Hasher, metrics=None) -> None:
        self.app, self.store, self.hasher, self.metrics = app, store, hasher, metrics
        self._pid: int | None = None
        self._event = threading.Event()
        self._stop = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.passes = 0  # completed passes, for tests and diagnostics
        self.clock = time.monotonic  # when the backlog was counted (a test steps its own clock)
        self.coalesce_s = _COALESCE_S  # a wake this soon after the last pass began waits out the rest
        _RELAYS.add(self)

    @property
    def running(self) -> bool:
        """This process's thread is alive."""
        return self._pid == os.getpid() and self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Ask the thread to publish now; never blocks on the store or the broker."""
        self._ensure_started()
        self._event.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """End the thread after the pass under way (its unpublished rows stay in the outbox); True once it ended.

        Waits up to `timeout` s (a pass held by a hung broker outlives it: the thread is a daemon, and the rows it
        claimed come back to every relay when their lease ends)."""
        with self._start_lock:
            thread = self._thread if self._pid == os.getpid() else None
            self._stop.set()
            self._event.set()
        if thread is None or not thread.is_alive():
            return True
        if thread is not threading.current_thread():
            thread.join(timeout)
        return not thread.is_alive()

    def _ensure_started(self) -> None:
        if self.running:
            return
        with self._start_lock:
            if self.running:
                return
            if self._pid != os.getpid():  # a forked child: the parent's thread and events are not ours
                self._event = threading.Event()
            self._stop = threading.Event()  # a new thread per start: an earlier stop ended the earlier one
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="coachup-outbox-relay", daemon=True
            )
            self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        retry_s = float(self.app.coachup.settings.outbox_retry_s)
        delay: float | None = None  # None: nothing owed, sleep until woken
        counted_at = float("-inf")  # when the backlog was last counted (monotonic)
        began = float("-inf")  # when the last pass began (monotonic)
        failing = ""
        while True:
            self._event.wait(delay)
            coalesce = began + self.coalesce_s - time.monotonic()
            if stop.is_set() or (coalesce > 0 and stop.wait(coalesce)):
                log_event(log, "outbox_relay_stopped", logging.INFO, passes=self.passes)
                return
            self._event.clear()
            began = time.monotonic()
            try:
                result = relay_pass(self.app, self.store, self.hasher, metrics=self.metrics, stopping=stop.is_set)
            except Exception as exc:  # the store is down: try again later, log once per kind of failure
                if failing != type(exc).__name__:
                    failing = type(exc).__name__
                    log_event(log, "outbox_relay_error", logging.ERROR, error={"type": failing})
                delay = min(_MAX_BACKOFF_S, (delay or retry_s / 2) * 2)
                continue
            failing = ""
            self.passes += 1
            now = self.clock()
            if result.published < _BATCH and not result.broker_down and now - counted_at < _COUNT_EVERY_S:
                # under load every request wakes a pass (and the other API processes' relays take some of the
                # rows first, so a pass may find none): count the backlog (one more query) at most once a
                # second, and look again after the retry interval, which counts it (nothing is left waiting)
                delay = retry_s
                continue
            counted_at = now
            try:
                pending, oldest_s = outbox.backlog(self.store)
            except Exception:
                pending, oldest_s = 1, 0.0  # unknown: look again later
            if self.metrics is not None:
                self.metrics.set_outbox_backlog(pending, oldest_s)
            if pending == 0:
                delay = None  # nothing owed: sleep until the next request wakes us
            elif result.broker_down:
                delay = min(_MAX_BACKOFF_S, (delay or retry_s / 2) * 2)
            elif result.published >= _BATCH:
                delay = 0.0  # a full batch: there is more
            elif result.published:
                delay = retry_s  # the rest is claimed by another relay or waits for its retry time
            else:
                delay = delay or retry_s


def relays() -> list[OutboxRelay]:
    """Every relay created in this process and still referenced (tests stop the ones a test created)."""
    return list(_RELAYS)


def stop_relays(timeout: float = 5.0) -> int:
    """Stop every relay thread of this process (process shutdown, test teardown); returns how many were running."""
    running = [relay for relay in list(_RELAYS) if relay.running]
    deadline = time.monotonic() + timeout
    for relay in running:
        relay.stop(timeout=max(0.0, deadline - time.monotonic()))
    return len(running)


def _stop_at_shutdown(**_kw) -> None:
    stop_relays()


atexit.register(stop_relays)  # before the interpreter closes the streams a late pass would log to
try:
    from celery import signals as _celery_signals

    _celery_signals.worker_shutdown.connect(_stop_at_shutdown, weak=False)
except Exception:  # pragma: no cover - celery is a dependency; this only guards odd embeddings
    pass


def install_relay(app, store: Store, hasher: Hasher, metrics=None) -> OutboxRelay:
    """Give `app` (the API's Celery app) a relay thread; `notify` then wakes it instead of publishing inline.
    `metrics`: the API's `Metrics` (its /metrics serves the relay's lag and backlog)."""
    relay = OutboxRelay(app, store, hasher, metrics)
    app.outbox_relay = relay
    return relay


def notify(app, store: Store, hasher: Hasher, job_ids: list[str]) -> None:
    """Job rows were committed: wake this process's relay thread, or (a worker) publish them inline now.

    Never raises: the rows are durable and the next relay pass publishes whatever this did not.
    """
    if not job_ids:
        return
    relay = getattr(app, "outbox_relay", None)
    if relay is not None:
        relay.wake()
        return
    try:
        relay_pass(app, store, hasher, job_ids=job_ids)
    except Exception as exc:
        log_event(log, "outbox_relay_error", logging.WARNING, error={"type": type(exc).__name__})
