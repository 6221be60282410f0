"""`GET /metrics` (Prometheus text) and `GET /api/metrics` (the same samples as JSON, for humans).

Under gunicorn (several worker processes) both read the multiprocess directory the master prepared, so
every worker's counts add up whichever worker answers the scrape; in a single process they read the app's
own registry.

The outbox gauges (`coachup_outbox_pending_jobs`, `coachup_outbox_oldest_pending_age_seconds`) are counted from
the store at each scrape: a relay stuck on a hung broker cannot update them, and that is when they matter. The
count runs beside the scrape and is waited for at most `_COUNT_WAIT_S`: a hung store (a SIGSTOPped PostgreSQL)
must not take the API's metrics with it, so the scrape then serves the gauges' last values, and at most one
count per process waits on the store at a time.
"""

from __future__ import annotations

import threading
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


_COUNT_WAIT_S = 0.5
_counting = threading.Lock()  # held while a count waits on the store


def _count_outbox() -> None:
    if not _counting.acquire(blocking=False):
        return  # the last count is still waiting on a hung store: serve the last values
    store = current_app.extensions["coachup"].store
    metrics = current_app.extensions["coachup_metrics"]
    counted = threading.Event()

    def count() -> None:
        try:
            pending, oldest_s = outbox.backlog(store)
            metrics.set_outbox_backlog(pending, oldest_s)
        except Exception:  # the store is down: the gauges keep their last value, /api/health says why
            pass
        finally:
            _counting.release()
            counted.set()

    threading.Thread(target=count, name="outbox-count", daemon=True).start()
    counted.wait(_COUNT_WAIT_S)


@bp.get("/metrics")
def prometheus_metrics():
    return Response(multiproc.render(_registry()), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/api/metrics")
def json_metrics():
    return {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "metrics": as_json(_registry()),
    }
