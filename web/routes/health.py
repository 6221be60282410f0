"""`GET /health` (liveness) and `GET /api/health` (broker, store and result backend, each timed)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from flask import Blueprint

from ..runtime import runtime

bp = Blueprint("health", __name__)

CHECK_TIMEOUT_S = 2.0
_STARTED = time.time()
_pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="health")


@bp.get("/health")
def liveness():
    return {"status": "ok"}


def _check_broker(rt) -> None:
    rt.celery.coachup.broker.ping(rt.celery)  # the broker's own check (`workers.brokers`)


def _check_store(rt) -> None:
    rt.store.ping()


def _check_results(rt) -> None:
    rt.celery.backend.get_task_meta("coachup-health-probe", cache=False)


_CHECKS = {"broker": _check_broker, "store": _check_store, "resultBackend": _check_results}


def _timed(fn, rt) -> dict:
    started = time.perf_counter()
    try:
        fn(rt)
        status, error = "healthy", None
    except Exception as exc:  # a failing dependency is the answer, not an error of this route
        status, error = "unhealthy", type(exc).__name__
    result = {"status": status, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    if error:
        result["error"] = error
    return result


@bp.get("/api/health")
def readiness():
    rt = runtime()
    futures = {name: _pool.submit(_timed, fn, rt) for name, fn in _CHECKS.items()}
    deps = {}
    for name, fut in futures.items():
        try:
            deps[name] = fut.result(timeout=CHECK_TIMEOUT_S + 0.5)
        except Exception:
            deps[name] = {"status": "unhealthy", "latency_ms": (CHECK_TIMEOUT_S + 0.5) * 1000, "error": "timeout"}
    healthy = all(d["status"] == "healthy" for d in deps.values())
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "broker": rt.celery.coachup.broker.name,
        "dependencies": deps,
        "uptime_seconds": round(time.time() - _STARTED, 1),
    }
    return body, 200 if healthy else 503
