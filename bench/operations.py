"""Benchmark 6, operations: dead-letter redrive rate, `/metrics` scrape time and child memory after many tasks.

- Redrive: N messages parked on the `deadletter` queue are moved back to `assessments` with kombu (consume,
  republish body and headers, ack): messages/s. (The Redis broker has no redrive command on this branch;
  this measures the transport work a redrive does.)
- Scrape and memory: one instrumented worker (`-c 2 --max-tasks-per-child 1000`, so the pool is recycled
  every 1000 tasks and leaves its metric files behind) drains `tasks` no-ops; then its `/metrics` endpoint
  is scraped 11 times (the first, which folds the dead children's files into archives, then the median
  and max of the other 10, in ms), the multiprocess files counted, and each child's RSS read, next to the
  same readings on the fresh worker (5 scrapes).
"""

from __future__ import annotations

import os
import statistics
import time
import urllib.request

from bench.common import (
    Worker,
    bench_env,
    children,
    env_vars,
    fresh_data_dir,
    load_average,
    rss_kib,
    wait_drained,
    wait_log,
)

__all__ = ["operations", "redrive_rate"]


def redrive_rate(broker: str, n: int) -> dict:
    from kombu import Consumer, Exchange, Queue

    fresh_data_dir(broker)
    with env_vars(COACHUP_BROKER_URL=broker):
        from bench.apps import NOOP, build

        app = build("bare")
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                app.send_task(NOOP, queue="deadletter", producer=producer, ignore_result=True)
        moved = 0
        started = time.perf_counter()
        with app.connection_for_write() as conn, app.producer_or_acquire() as producer:

            def move(body, message):
                nonlocal moved
                producer.publish(
                    message.body,
                    exchange="assessments",
                    routing_key="assessments",
                    headers=message.headers,
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                )
                message.ack()
                moved += 1

            with Consumer(
                conn,
                [Queue("deadletter", Exchange("deadletter", type="direct"), "deadletter")],
                callbacks=[move],
                prefetch_count=100,
            ):
                deadline = time.monotonic() + 120
                while moved < n and time.monotonic() < deadline:
                    conn.drain_events(timeout=2)
        elapsed = time.perf_counter() - started
    return {"messages": n, "moved": moved, "messages_per_s": round(moved / elapsed, 1)}


def _scrape(port: int, n: int = 5) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as resp:
            size = len(resp.read())
        times.append((time.perf_counter() - t0) * 1000)
    return times, size


def _child_rss(pid: int) -> list[int]:
    return [rss_kib(c) for c in children(pid)]


def operations(broker: str, tasks: int, redrive: int, log=print) -> dict:
    from bench.overhead import publish_noops

    out = {"redrive": redrive_rate(broker, redrive)}
    log(f"operations redrive: {out['redrive']}")
    data_dir = fresh_data_dir(broker)
    env = bench_env(broker, data_dir)
    port = int(env["COACHUP_WORKER_METRICS_PORT"])
    worker = Worker(
        "bench.apps:instrumented", env, concurrency=2, name="bench-ops", extra=("--max-tasks-per-child", "1000")
    )
    try:
        wait_log(worker, "ready.")
        fresh_times, _ = _scrape(port)
        fresh_rss = _child_rss(worker.pid)
        with env_vars(COACHUP_BROKER_URL=broker, COACHUP_DATA_DIR=data_dir):
            publish_noops("bare", tasks)
        elapsed, _cpu = wait_drained(broker, tasks, [worker], data_dir=data_dir, timeout=900)
        # the first scrape after the drain folds the recycled children's metric files into archives
        times, size = _scrape(port, 11)
        rss = _child_rss(worker.pid)
        folder = next(
            (os.path.join(root, d) for root, dirs, _ in os.walk(data_dir) for d in dirs if d.startswith("worker-")),
            None,
        )
        files = len(os.listdir(folder)) if folder else None
        main_rss = rss_kib(worker.pid)
    finally:
        worker.stop()
    out.update(
        {
            "tasks": tasks,
            "max_tasks_per_child": 1000,
            "drain_tasks_per_s": round(tasks / elapsed, 1),
            "scrape_ms": {
                "fresh_median": round(statistics.median(fresh_times), 1),
                "first": round(times[0], 1),
                "median": round(statistics.median(times[1:]), 1),
                "max": round(max(times[1:]), 1),
            },
            "scrape_bytes": size,
            "multiprocess_files": files,
            "child_rss_mib": {
                "fresh": [round(k / 1024, 1) for k in fresh_rss],
                "after": [round(k / 1024, 1) for k in rss],
            },
            "main_rss_mib": round(main_rss / 1024, 1),
            "loadavg": load_average(),
        }
    )
    log(f"operations: {out}")
    return out
