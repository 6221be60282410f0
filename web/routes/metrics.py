"""`GET /metrics` (Prometheus text) and `GET /api/metrics` (the same samples as JSON, for humans).

Under gunicorn (several worker processes) both read the multiprocess directory the master prepared, so
every worker's counts add up whichever worker answers the scrape; in a single process they read the app's
own registry.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

from coachup.metrics import as_json, multiproc
from coachup.metrics.families import WORKER_ONLY_FAMILIES

__all__ = ["bp"]

bp = Blueprint("metrics", __name__)


def _registry():
    folder = multiproc.active_dir()
    if folder is not None:
        return multiproc.collect_registry(folder, without=WORKER_ONLY_FAMILIES)
    return multiproc.without(current_app.extensions["coachup_metrics"].registry, WORKER_ONLY_FAMILIES)


@bp.get("/metrics")
def prometheus_metrics():
    return Response(multiproc.render(_registry()), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/api/metrics")
def json_metrics():
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "metrics": as_json(_registry()),
    }
