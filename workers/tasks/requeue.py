"""`jobs.requeue`: the scheduler's relay pass over the outbox (`workers.relay`), then its look for jobs whose
message the broker lost (`workers.requeue`).

The relay pass publishes every row still unpublished: rows an API process committed and then died before its
relay thread sent them, or rows a worker could not publish inline. It is the scheduler's half of the relay.
"""

from __future__ import annotations

from ..base import task_options
from ..enqueue import PUBLISH_ERRORS
from ..relay import relay_pass
from ..requeue import requeue_lost_jobs

__all__ = ["register"]


def register(app) -> None:
    # one bounded pass (at most 200 jobs per kind): a stuck store or broker must not hold a child
    @app.task(**task_options(app, "jobs.requeue", ignore_result=True, soft_time_limit=20, time_limit=30))
    def requeue_lost(self) -> dict:
        """Publish the outbox's leftovers, then again every job the broker lost; the next tick looks again if the
        broker is down."""
        rt = self.runtime
        relayed = relay_pass(self.app, rt.store, rt.hasher, limit=500)
        _record_backlog(self.app, rt.store)
        if relayed.broker_down:
            return {"relayed": relayed.published, "requeued": 0}
        try:
            return {"relayed": relayed.published, "requeued": requeue_lost_jobs(self.app, rt.store, rt.hasher)}
        except PUBLISH_ERRORS:  # the broker cannot be read now
            return {"relayed": relayed.published, "requeued": 0}


def _record_backlog(app, store) -> None:
    """The outbox's pending count and oldest age, as this tick sees them (the scheduler's gauges)."""
    from coachup.store import outbox

    from ..metrics_host import metrics_for

    pending, oldest_s = outbox.backlog(store)
    metrics_for(app).set_outbox_backlog(pending, oldest_s)
