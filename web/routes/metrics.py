"""`GET /metrics` (Prometheus text) and `GET /api/metrics` (the same samples as JSON, for humans).

Under gunicorn (several worker processes) both read the multiprocess directory the master prepared, so
every worker's counts add up whichever worker answers the scrape; in a single process they read the app's
own registry.

The outbox gauges (`coachup_outbox_pending_jobs`, `coachup_outbox_oldest_pending_age_seconds`) are counted from
the store at each scrape: a relay stuck on a hung broker cannot update them, and that is when they matter.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

from coachup.metrics import as_json, multiproc
from coachup.metrics.families import WORKER_ONLY_FAMILIES
from coachup.store import outbox

__all__ = ["bp"]

bp = Blueprint("metrics", __name__)


def _registry():
    _count_outbox()
    folder = multiproc.active_dir()
    if folder is not None:
        return multiproc.collect_registry(folder, without=WORKER_ONLY_FAMILIES)
    return multiproc.without(current_app.extensions["coachup_metrics"].registry, WORKER_ONLY_FAMILIES)


def _count_outbox() -> None:
    try:
        pending, oldest_s = outbox.backlog(current_app.extensions["coachup"].store)
    except Exception:  # the store is down: the gauges keep their last value, /api/health says why
        return
    current_app.extensions["coachup_metrics"].set_outbox_backlog(pending, oldest_s)


@bp.get("/metrics")
def prometheus_metrics():
    return Response(multiproc.render(_registry()), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/api/metrics")
def json_metrics():
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "metrics": as_json(_registry()),
    }
