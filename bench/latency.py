"""Benchmark 4, latency: enqueue->dequeue and enqueue->result percentiles at half the measured capacity.

`latency`: one instrumented worker (`-c 2`, Redis) runs `bench.stamp`, which returns the wall-clock ms at
which it started; the publisher sends at a steady rate (half of the throughput measured by benchmark 1) for
`seconds`, remembering each send time. Dequeue = the stamp; result = the backend's `date_done`.

`assessment_latency`: end to end for a real assessment (heuristic provider, 4 turns, 3 skills) on a whole
setup: the default one (embedded Redis, SQLite, one worker instance per core, `-c 1` each, as `coachup run`
starts them) or Redis + PostgreSQL. The groups are stored first; then, at half the setup's capacity (the
jobs/s per worker process of benchmark 2 times the instances), each job is enqueued through the project's
own path (`enqueue_assessment`: job row, then publish) and its enqueue time noted. Result = the job row's
`updatedAt` when it turned `done` (the summary is stored in the same transaction).
"""

from __future__ import annotations

import time
from datetime import datetime

from bench.common import Worker, bench_env, env_vars, fresh_data_dir, load_average, wait_log

__all__ = ["latency", "assessment_latency", "percentiles"]


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


def _iso_ms(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000


def assessment_latency(
    broker: str,
    jobs_per_s_per_process: float,
    seconds: float = 10.0,
    database: str = "",
    instances: int | None = None,
    setup: str = "",
    log=print,
) -> dict:
    """Enqueue -> result percentiles of real assessment jobs at half the setup's capacity (module docstring)."""
    from bench.assessment import enqueue_group, store_groups
    from coachup.cli.supervisor import worker_instances

    instances = instances or worker_instances()
    capacity = jobs_per_s_per_process * instances
    rate = max(0.5, capacity / 2)
    n = max(1, int(rate * seconds))
    data_dir = fresh_data_dir(broker)
    extra = {"AI_PROVIDER_ASSESS": "heuristic", **({"COACHUP_DATABASE_URL": database} if database else {})}
    sent: dict[str, float] = {}
    done: list[float] = []
    pending: dict[str, float] = {}
    workers = []
    try:
        with env_vars(COACHUP_BROKER_URL=broker, COACHUP_DATA_DIR=data_dir, **extra):
            from workers import create_celery

            app = create_celery()
            store = app.coachup.store
            groups = store_groups(store, n, prefix="e2e")
            workers = [
                Worker("workers", bench_env(broker, data_dir, **extra), concurrency=1, name=f"bench-e2e{i}")
                for i in range(instances)
            ]
            for w in workers:
                wait_log(w, "ready.")
            interval, start = 1.0 / rate, time.perf_counter()
            for i, (session, group) in enumerate(groups):
                delay = start + i * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                sent_ms = time.time() * 1000
                sent[enqueue_group(app, session, group)] = sent_ms
            pending = dict(sent)
            deadline = time.monotonic() + 120
            while pending and time.monotonic() < deadline:
                for job_id in list(pending):
                    job = store.get_job(job_id) or {}
                    if job.get("status") == "done":
                        done.append(_iso_ms(job["updatedAt"]) - pending.pop(job_id))
                    elif job.get("status") == "failed":
                        raise RuntimeError(f"assessment job failed: {job.get('error')}")
                if pending:
                    time.sleep(0.1)
    finally:
        for w in workers:
            w.stop()
    out = {
        "setup": setup or ("redis+postgresql" if database.startswith("postgres") else "redis+sqlite"),
        "worker_instances": instances,
        "capacity_jobs_per_s": round(capacity, 1),
        "rate_per_s": round(rate, 1),
        "seconds": seconds,
        "jobs": len(sent),
        "lost": len(pending),
        "enqueue_to_result_ms": percentiles(done),
        "loadavg": load_average(),
    }
    log(f"assessment_latency: {out}")
    return out
