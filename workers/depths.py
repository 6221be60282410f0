"""Queue depths, read once, the same way for every reader.

`read_depths(app)` asks the chosen broker for every queue's rows and the one dead-letter depth; `coachup
queues`, `coachup dlq ls`, `GET /api/v1/ops/queues`, `GET /api/v1/ops/deadletters`, the worker's gauges
(`workers.metrics_host`) and, through the broker's `requeue_view`, the requeue sweep all read from here, so
they cannot disagree. The dead-letter depth comes in two labelled parts (`coachup.queues.DeadLetterDepth`):
letters stored vs letters waiting in the broker.
"""

from __future__ import annotations

from coachup.jobs import queue_names
from coachup.queues import DepthReport

__all__ = ["read_depths"]


def read_depths(app) -> DepthReport:
    """Every queue's depth and the dead-letter depth on `app`'s broker (raises when the broker is down)."""
    broker = app.coachup.broker
    rows = broker.queue_depths(app, queue_names())
    dead = broker.dead_letter_depth(rows, app.coachup.store)
    return DepthReport(broker.name, tuple(rows), dead)
