"""`make bench`: every benchmark in one invocation, one table, `bench/results.json` and `docs/scaling.png`.

    python -m bench.suite --broker redis://127.0.0.1:6379/8 [--database postgresql://...] [--quick]

The Redis database given by `--broker` is flushed by every benchmark: never point it at real work.
Exit code 1 when a target is missed (task throughput < 0.90x bare, API < 0.80x bare or p99 > 15 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, machine

__all__ = ["run", "main", "KEYS"]

KEYS = ("task_throughput", "assessment_throughput", "api_intake", "latency", "scaling", "operations")


def run(args) -> dict:
    from bench.api import api_intake
    from bench.assessment import assessment_throughput
    from bench.latency import latency
    from bench.operations import operations
    from bench.overhead import embedded_server, task_throughput
    from bench.scaling import plot, scaling

    os.environ["COACHUP_BROKER_URL"] = args.broker
    os.environ.setdefault("COACHUP_DATA_DIR", tempfile.mkdtemp(prefix="coachup-bench-"))
    started = time.monotonic()
    results: dict = {"machine": machine(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tp = task_throughput({"redis": args.broker}, args.tasks, args.rounds)
    # the embedded broker is a private Redis on a Unix socket: the same code path, its own server
    server = embedded_server()
    try:
        embedded = task_throughput({"embedded": server.url}, args.tasks, args.rounds)
    finally:
        server.stop()
    tp["embedded"] = embedded["embedded"]
    tp["ratio"] = min(tp["redis"]["ratio"], tp["embedded"]["ratio"])
    tp["baseline"], tp["coachup"] = tp["redis"]["baseline"], tp["redis"]["coachup"]
    results["task_throughput"] = tp
    framework = tp["redis"]["cpu_ms_per_task"]["coachup"]
    results["assessment_throughput"] = assessment_throughput(args.broker, args.jobs, framework)
    results["api_intake"] = api_intake(args.broker, args.seconds, args.database)
    results["latency"] = latency(args.broker, tp["redis"]["coachup"], args.latency_seconds)
    results["scaling"] = scaling(args.broker, args.tasks)
    results["operations"] = operations(args.broker, args.ops_tasks, args.redrive)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["machine"]["loadavg_end"] = machine()["loadavg"]
    if not args.no_plot:
        plot(results["scaling"], ROOT / "docs" / "scaling.png")
    return results


def table(r: dict) -> str:
    tp, api, lat, ops = r["task_throughput"], r["api_intake"], r["latency"], r["operations"]
    rows = [("benchmark", "baseline", "coachup", "ratio")]
    for broker in ("redis", "embedded"):
        rows.append(
            (f"task throughput, {broker} (tasks/s)", tp[broker]["baseline"], tp[broker]["coachup"], tp[broker]["ratio"])
        )
        rows.append(
            (
                f"  CPU ms/task, {broker}",
                tp[broker]["cpu_ms_per_task"]["baseline"],
                tp[broker]["cpu_ms_per_task"]["coachup"],
                "",
            )
        )
    a = r["assessment_throughput"]
    rows.append(("assessment jobs/s (1 process)", "", a["jobs_per_s"], ""))
    rows.append(
        (
            "  CPU ms/job framework | assessment",
            "",
            f"{a['framework_cpu_ms_per_job']} | {a['assessment_cpu_ms_per_job']}",
            "",
        )
    )
    rows.append(
        ("API intake (req/s)", api["baseline"]["requests_per_s"], api["coachup"]["requests_per_s"], api["ratio"])
    )
    rows.append(
        (
            "  API p50 | p99 (ms)",
            f"{api['baseline']['p50_ms']} | {api['baseline']['p99_ms']}",
            f"{api['coachup']['p50_ms']} | {api['coachup']['p99_ms']}",
            "",
        )
    )
    rows.append(
        (
            f"latency @ {lat['rate_per_s']}/s enqueue->dequeue p50/p95/p99 ms",
            "",
            "/".join(str(v) for v in lat["enqueue_to_dequeue_ms"].values()),
            "",
        )
    )
    rows.append(
        ("  enqueue->result p50/p95/p99 ms", "", "/".join(str(v) for v in lat["enqueue_to_result_ms"].values()), "")
    )
    for p in r["scaling"]["points"]:
        rows.append((f"scaling, {p['instances']} instance(s) (tasks/s)", "", p["tasks_per_s"], ""))
    rows.append(("redrive (msgs/s)", "", ops["redrive"]["messages_per_s"], ""))
    rows.append(
        (
            f"/metrics scrape after {ops['tasks']} tasks (median ms)",
            ops["scrape_ms"]["fresh_median"],
            ops["scrape_ms"]["median"],
            "",
        )
    )
    rows.append(("child RSS MiB (fresh -> after)", ops["child_rss_mib"]["fresh"], ops["child_rss_mib"]["after"], ""))
    width = [max(len(str(row[i])) for row in rows) for i in range(4)]
    return "\n".join("  ".join(str(c).ljust(width[i]) for i, c in enumerate(row)) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/8"))
    parser.add_argument(
        "--database",
        default=os.environ.get("BENCH_DATABASE", ""),
        help="store URL for the API benchmark (empty: SQLite in a temporary data dir)",
    )
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--ops-tasks", type=int, default=20000)
    parser.add_argument("--redrive", type=int, default=5000)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the plumbing, not the speed")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.rounds, args.jobs, args.seconds = 300, 1, 10, 2
        args.latency_seconds, args.ops_tasks, args.redrive = 2.0, 300, 100
    results = run(args)
    tmp = Path(args.output + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, args.output)
    print(table(results))
    print(f"wrote {args.output} in {results['elapsed_s']} s")
    api = results["api_intake"]
    ok = results["task_throughput"]["ratio"] >= 0.90 and api["ratio"] >= 0.80 and api["coachup"]["p99_ms"] <= 15.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
