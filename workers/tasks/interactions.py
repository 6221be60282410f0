"""The scheduler's sweep: close idle interaction groups and queue any closed group still waiting.

Jobs whose message the broker lost are the `jobs.requeue` kind's business (`workers/tasks/requeue.py`).
"""

from __future__ import annotations

import time
from datetime import timedelta

from coachup.context import RequestContext, new_request_id

from ..base import task_options
from ..enqueue import enqueue_assessment
from ..metrics_host import metrics_for, worker_host

__all__ = ["register"]


def register(app) -> None:
    @app.task(**task_options(app, "interactions.sweep", ignore_result=True))
    def sweep_interactions(self) -> dict:
        """Close idle groups and queue every closed group without a job."""
        rt = self.runtime
        idle = timedelta(milliseconds=rt.settings.interaction_idle_timeout_ms)
        closed = rt.store.close_idle_groups(idle)
        queued = 0
        for session_id, group_id in rt.store.closed_groups_awaiting_job():
            ctx = RequestContext(requestId=new_request_id())
            # the row is committed, then published inline; a refused publish leaves it to the relay's pass
            _, created = enqueue_assessment(
                self.app, rt.store, rt.hasher, session_id=session_id, group_id=group_id, ctx=ctx, only_if_none=True
            )
            queued += int(created)
        # the scheduler's liveness: beat sent this tick and a worker ran it to the end (CoachUpSchedulerStalled)
        metrics_for(self.app).record_sweep(time.time(), worker_host())
        return {"closed": len(closed), "queued": queued}
