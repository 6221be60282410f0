"""`GET /service-metrics`: four numbers the old API served and the front end's ops docs read.

`queueDepth` (assessment messages waiting on the broker), `workerConcurrency` (pool slots of the workers
that answer a ping; None on SQS, which has no remote control), `sessionCount` and `resultsCount` (from the
store). A dependency that cannot answer gives None for its number, never an error: this is a probe for a
human, and `/api/health` is the one that fails.
"""

from __future__ import annotations

import threading
import time

from flask import Blueprint

from ..runtime import runtime

bp = Blueprint("service_metrics", __name__)

INSPECT_TIMEOUT_S = 0.5
CONCURRENCY_TTL_S = 15.0  # a worker ping waits INSPECT_TIMEOUT_S: ask at most this often per process
_cache: dict = {"at": float("-inf"), "value": None}
_lock = threading.Lock()


@bp.get("/service-metrics")
def service_metrics():
    rt = runtime()
    counts: dict[str, int | None]
    try:
        counts = dict(rt.store.counts())
    except Exception:  # the store is down: /api/health says so
        counts = {"sessions": None, "results": None}
    return {
        "queueDepth": _queue_depth(rt),
        "workerConcurrency": _worker_concurrency(rt),
        "sessionCount": counts["sessions"],
        "resultsCount": counts["results"],
    }


def _queue_depth(rt) -> int | None:
    broker = rt.celery.coachup.broker
    try:
        (row,) = broker.queue_depths(rt.celery, ["assessments"])  # the one depth reader (workers/brokers)
    except Exception:  # broker unreachable
        return None
    return row.visible


def _worker_concurrency(rt) -> int | None:
    if not rt.celery.coachup.broker.has_events:  # SQS: no remote control, so no worker answers a ping
        return None
    with _lock:
        if time.monotonic() - _cache["at"] < CONCURRENCY_TTL_S:
            return _cache["value"]
        try:
            stats = rt.celery.control.inspect(timeout=INSPECT_TIMEOUT_S).stats() or {}
            value = sum(int((s.get("pool") or {}).get("max-concurrency") or 0) for s in stats.values())
        except Exception:  # no broker, or no remote control: unknown
            value = None
        _cache.update(at=time.monotonic(), value=value)
        return value
