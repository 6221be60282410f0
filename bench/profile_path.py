"""The instrumented path in one process: µs per task of the signal receivers, logs and metrics, optionally profiled.

Runs the same no-op through `bare` and `instrumented` apps eagerly (`Task.apply`: the same tracer, the same
`task_prerun`/`task_postrun` receivers a pool child runs, no broker), with JSON logs written to /dev/null and
metrics in multiprocess mode, and prints CPU microseconds per task (process time: steadier than wall time on a shared machine) for each and the difference. `--profile`
writes a pyinstrument report of the instrumented loop (bench extra).

    python -m bench.profile_path --tasks 20000 [--profile var/profile.txt]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

__all__ = ["per_task_us", "main"]


def _prepare() -> None:
    data_dir = tempfile.mkdtemp(prefix="coachup-profile-")
    os.environ.setdefault("COACHUP_BROKER_URL", "redis://127.0.0.1:6379/15")
    os.environ["COACHUP_DATA_DIR"] = data_dir
    os.environ["COACHUP_LOG_LEVEL"] = "INFO"
    from coachup.logs import configure_logging
    from coachup.metrics import multiproc

    multiproc.enable(os.path.join(data_dir, "prometheus"), wipe=True)
    configure_logging("worker", "development", "INFO", stream=open(os.devnull, "w"))


def per_task_us(variant: str, n: int) -> float:
    """CPU µs (this process) per eager run of `bench.noop` through `variant` (best of three passes)."""
    from bench.apps import NOOP, build

    task = build(variant).tasks[NOOP]
    headers = {"requestId": "0b6f1e7c-8a43-4c1e-9d0e-1f2a3b4c5d6e", "enqueuedAtMs": int(time.time() * 1000)}
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(n):
            task.apply(headers=headers, delivery_info={"routing_key": "assessments"})
        best = min(best, (time.process_time() - t0) / n * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--profile", help="write a pyinstrument text report of the instrumented loop here")
    args = parser.parse_args(argv)
    _prepare()
    bare = per_task_us("bare", args.tasks)
    inst = per_task_us("instrumented", args.tasks)
    print(f"bare {bare:.1f} µs/task, instrumented {inst:.1f} µs/task, instrumentation {inst - bare:.1f} µs/task")
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002)
        profiler.start()
        per_task_us("instrumented", max(1, args.tasks // 3))
        profiler.stop()
        with open(args.profile, "w") as fh:
            fh.write(profiler.output_text(unicode=False, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
