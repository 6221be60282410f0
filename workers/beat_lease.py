"""The scheduler's lease: only the `coachup beat` holding it sends periodic tasks; any other one stays inert.

Celery beat has no notion of a second beat. Two of them (a second `coachup beat`, a second `make run` on a
shared store) each sent every sweep, so the sweeps ran twice as often and raced each other for the same groups
(issue 16, finding 4). `LeasedScheduler` takes the store's `scheduler` lease (`coachup.store.leases`) before
every tick and renews it at least every third of `COACHUP_SCHEDULER_LEASE_S`; without it, it sends nothing,
logs `scheduler_standby` once (and `scheduler_leader` when it takes over) and sets `coachup_scheduler_leader`
to 0. A standby takes over once the holder has not renewed for the lease's length (at once after a clean stop).
`celeryconfig` makes this the `beat_scheduler`. The leader also runs the pop-window watch (`workers/popwatch.py`)
every `COACHUP_POP_WATCH_S`, between its ticks.
"""

from __future__ import annotations

import logging
import os
import socket

from celery.beat import PersistentScheduler

from coachup.logs import log_event
from coachup.metrics import Metrics
from coachup.store.leases import hold_lease, release_lease

from .popwatch import PopWatch

__all__ = ["LeasedScheduler", "SCHEDULER", "LEASE_NAME"]

SCHEDULER = "workers.beat_lease:LeasedScheduler"
LEASE_NAME = "scheduler"
log = logging.getLogger("coachup.beat")


class LeasedScheduler(PersistentScheduler):
    """Celery's persistent scheduler, ticking only while it holds the lease."""

    def __init__(self, *args, **kwargs) -> None:
        self._holder = f"{socket.gethostname()}:{os.getpid()}"
        self._leader: bool | None = None
        self._metrics = Metrics()
        super().__init__(*args, **kwargs)
        # beat publishes only the periodic sweeps, whose task events are off (workers/base.py::task_options):
        # no `task-sent` either, or Flower would list every sweep as a task forever in state SENT
        self.app.conf.task_send_sent_event = False
        settings = self.app.coachup.settings
        self._ttl = float(settings.scheduler_lease_s)
        self._port = settings.beat_metrics_port
        self._serving = False
        self._watch = PopWatch(self.app, period_s=settings.pop_watch_s)

    def _serve_metrics(self) -> None:
        """On the first tick (celery builds a throwaway scheduler for its banner, which must not bind the port)."""
        if self._port and not self._serving:
            from prometheus_client import start_http_server

            start_http_server(self._port, registry=self._metrics.registry)
        self._serving = True

    def _holds(self) -> bool:
        try:
            return hold_lease(self.app.coachup.store, LEASE_NAME, self._holder, self._ttl)
        except Exception as exc:  # the store is down: nobody can prove they lead, so send nothing
            log_event(log, "scheduler_lease_error", logging.WARNING, error={"type": type(exc).__name__})
            return False

    def _became(self, leader: bool) -> None:
        if leader is not self._leader:
            event = "scheduler_leader" if leader else "scheduler_standby"
            level = logging.INFO if leader else logging.WARNING
            note = "this scheduler sends the periodic tasks" if leader else "another scheduler holds the lease; inert"
            log_event(log, event, level, holder=self._holder, leaseS=self._ttl, note=note)
            self._leader = leader
        self._metrics.scheduler_leader.set(1 if leader else 0)

    def tick(self, *args, **kwargs) -> float:
        self._serve_metrics()
        leader = self._holds()
        self._became(leader)
        if not leader:
            self._metrics.scheduler_standby_ticks_total.inc()
            return self._ttl / 3
        wait = min(super().tick(*args, **kwargs), self._ttl / 3)
        if not self._watch.enabled:
            return wait
        self._watch.maybe_look()  # the pop-window watch (workers/popwatch.py): the leader's alone
        return min(wait, self._watch.seconds_to_next())

    def close(self) -> None:
        super().close()
        if self._leader:
            try:
                release_lease(self.app.coachup.store, LEASE_NAME, self._holder)
            except Exception:  # the lease then simply expires
                log_event(log, "scheduler_lease_error", logging.WARNING, error={"type": "release"})
