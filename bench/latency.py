"""Benchmark 4, latency: enqueue->dequeue and enqueue->result percentiles at half the measured capacity.

One instrumented worker (`-c 2`, Redis) runs `bench.stamp`, which returns the wall-clock ms at which it
started; the publisher sends at a steady rate (half of the throughput measured by benchmark 1) for
`seconds`, remembering each send time. Dequeue = the stamp; result = the backend's `date_done`.
"""

from __future__ import annotations

import time
from datetime import datetime

from bench.common import Worker, bench_env, env_vars, fresh_data_dir, load_average, wait_log

__all__ = ["latency", "percentiles"]


def percentiles(values: list[float]) -> dict:
    """p50/p95/p99 (nearest rank) of `values`, in the same unit, rounded to 0.1."""
    if not values:
        return {"p50": None, "p95": None, "p99": None}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]  # noqa: E731
    return {"p50": round(pick(0.50), 1), "p95": round(pick(0.95), 1), "p99": round(pick(0.99), 1)}


def _done_ms(meta: dict) -> float | None:
    done = meta.get("date_done")
    if isinstance(done, str):
        done = datetime.fromisoformat(done.replace("Z", "+00:00"))
    return done.timestamp() * 1000 if done is not None else None


def latency(broker: str, capacity_per_s: float, seconds: float = 10.0, log=print) -> dict:
    rate = max(1.0, capacity_per_s / 2)
    data_dir = fresh_data_dir(broker)
    worker = Worker("bench.apps:instrumented", bench_env(broker, data_dir), concurrency=2, name="bench-latency")
    sent: dict[str, float] = {}
    try:
        wait_log(worker, "ready.")
        with env_vars(COACHUP_BROKER_URL=broker, COACHUP_DATA_DIR=data_dir):
            from bench.apps import STAMP, build

            app = build("bare")
            interval, start = 1.0 / rate, time.perf_counter()
            n = int(rate * seconds)
            with app.producer_or_acquire() as producer:
                for i in range(n):
                    delay = start + i * interval - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    sent_ms = time.time() * 1000
                    result = app.send_task(STAMP, queue="assessments", producer=producer)
                    sent[result.id] = sent_ms
            deadline = time.monotonic() + 120
            dequeue, done = [], []
            pending = dict(sent)
            while pending and time.monotonic() < deadline:
                for task_id in list(pending):
                    meta = app.backend.get_task_meta(task_id)
                    if meta.get("status") == "SUCCESS":
                        dequeue.append(meta["result"] - pending[task_id])
                        finished = _done_ms(meta)
                        if finished is not None:
                            done.append(finished - pending[task_id])
                        del pending[task_id]
                if pending:
                    time.sleep(0.2)
    finally:
        worker.stop()
    out = {
        "rate_per_s": round(rate, 1),
        "seconds": seconds,
        "tasks": len(sent),
        "lost": len(pending),
        "enqueue_to_dequeue_ms": percentiles(dequeue),
        "enqueue_to_result_ms": percentiles(done),
        "worker": "instrumented, -c 2, redis",
        "loadavg": load_average(),
    }
    log(f"latency: {out}")
    return out
