"""Benchmark 5, scaling: no-op throughput with 1, 2 and 4 instrumented worker instances on one host.

Each instance is its own `celery worker -c 1` (the main process of one instance is the bottleneck for
small tasks, so scaling out means more instances). The messages are published first and the Redis list is
renamed aside; once every instance is ready it is renamed back (atomically) and the clock runs from that
moment to the queue drained, so no instance's start-up time counts.
"""

from __future__ import annotations

import os

from bench.common import Worker, bench_env, fresh_data_dir, load_average, wait_drained, wait_log

__all__ = ["scaling", "plot"]

_HOLD = "bench-hold"


def scaling(broker: str, n: int, counts=(1, 2, 4), log=print) -> dict:
    import redis

    from bench.common import env_vars
    from bench.overhead import publish_noops

    points = []
    for count in counts:
        data_dir = fresh_data_dir(broker)
        with env_vars(COACHUP_BROKER_URL=broker, COACHUP_DATA_DIR=data_dir):
            publish_noops("bare", n)
        client = redis.Redis.from_url(broker)
        client.rename("assessments", _HOLD)
        workers = [
            Worker(
                "bench.apps:instrumented", bench_env(broker, data_dir), concurrency=1, name=f"bench-scale{count}-{i}"
            )
            for i in range(count)
        ]
        try:
            for w in workers:
                wait_log(w, "ready.")
            client.rename(_HOLD, "assessments")
            elapsed, cpu = wait_drained(broker, n, workers, data_dir=data_dir, start_now=True)
        finally:
            for w in workers:
                w.stop()
        point = {
            "instances": count,
            "tasks_per_s": round(n / elapsed, 1),
            "cpu_ms_per_task": round(cpu * 1000 / n, 3),
            "loadavg": load_average(),
        }
        log(f"scaling: {point}")
        points.append(point)
    return {"tasks": n, "cores": os.cpu_count(), "concurrency_per_instance": 1, "points": points}


def plot(result: dict, path) -> None:
    """The scaling curve as a small PNG (matplotlib, bench extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p["instances"] for p in result["points"]]
    ys = [p["tasks_per_s"] for p in result["points"]]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot(xs, ys, marker="o", label="coachup (instrumented)")
    ax.plot(xs, [ys[0] * x for x in xs], linestyle=":", color="grey", label="linear from 1 instance")
    ax.set_xticks(xs)
    ax.set_xlabel(f"worker instances (-c 1 each) on {result['cores']} cores")
    ax.set_ylabel("no-op tasks/s (Redis)")
    ax.set_title("Scaling out on one host")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
