"""`jobs.requeue`: the scheduler's look for jobs whose message the broker lost (`workers.requeue`)."""

from __future__ import annotations

from ..base import task_options
from ..enqueue import PUBLISH_ERRORS
from ..requeue import requeue_lost_jobs

__all__ = ["register"]


def register(app) -> None:
    # one bounded pass (at most 200 jobs per kind): a stuck store or broker must not hold a child
    @app.task(**task_options(app, "jobs.requeue", ignore_result=True, soft_time_limit=20, time_limit=30))
    def requeue_lost(self) -> dict:
        """Publish again every job the broker lost; the next tick looks again if the broker is down."""
        rt = self.runtime
        try:
            return {"requeued": requeue_lost_jobs(self.app, rt.store, rt.hasher)}
        except PUBLISH_ERRORS:  # the broker cannot be read now
            return {"requeued": 0}
