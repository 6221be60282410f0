"""`make bench`: every benchmark in one invocation, one table, `bench/results.json` and `docs/scaling.png`.

    python -m bench.suite --broker redis://127.0.0.1:6379/8 [--database postgresql://...] [--quick]
    python -m bench.suite --only task_throughput,assessment_throughput --tasks 60 --output /tmp/r.json

The Redis database given by `--broker` is flushed by every benchmark: never point it at real work.
Exit code 1 when a target is missed (task throughput < 0.90x bare or CPU per task > 1.05x bare, the default
deployment < 1.5x bare; API intake < 0.80x the fair baseline's req/s, > 1.25x its CPU per request or
p99 > 15 ms; with 200 chat streams open, intake < 0.80x or the added time to first token > 5 ms p50 / 25 ms p99).
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

__all__ = ["run", "main", "table", "targets_met", "KEYS"]

KEYS = ("task_throughput", "assessment_throughput", "api_intake", "chat_streams", "latency", "scaling", "operations")


def run(args) -> dict:
    from bench.api import api_intake
    from bench.assessment import assessment_throughput
    from bench.latency import latency
    from bench.operations import operations
    from bench.overhead import deployment, embedded_server, task_throughput
    from bench.scaling import plot, scaling

    only = set(getattr(args, "only", None) or KEYS)
    os.environ["COACHUP_BROKER_URL"] = args.broker
    os.environ.setdefault("COACHUP_DATA_DIR", tempfile.mkdtemp(prefix="coachup-bench-"))
    started = time.monotonic()
    results: dict = {"machine": machine(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    framework = None
    if "task_throughput" in only:
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
        tp["cpu_ratio"] = tp["redis"]["cpu_ratio"]  # the CPU target is stated on Redis
        # the operator's figure: the default worker deployment against bare Celery with the same safe settings
        tp["deployment"] = deployment({"redis": args.broker}, args.tasks, 1 if args.quick else args.rounds)
        results["task_throughput"] = tp
        framework = tp["redis"]["cpu_ms_per_task"]["coachup"]
    if "assessment_throughput" in only:
        results["assessment_throughput"] = assessment_throughput(args.broker, args.jobs, framework)
    if "api_intake" in only:
        results["api_intake"] = api_intake(args.broker, args.seconds, args.database)
    if "chat_streams" in only:  # target 2: 200 streams held open, in the intake's processes and split off
        from bench import chat_streams

        results["chat_streams"] = chat_streams.run(
            streams=args.streams,
            seconds=args.seconds,
            database=args.database,
            one_stream_s=args.one_stream_seconds,
            compare_sync=False,
        )
        results["chat_streams"]["loadavg"] = machine()["loadavg"]
    if "latency" in only:  # paced at half the instrumented capacity benchmark 1 measured
        results["latency"] = latency(args.broker, results["task_throughput"]["redis"]["coachup"], args.latency_seconds)
        if "assessment_throughput" in results:  # end to end, real assessments, at half the setup's capacity
            results["latency"]["assessment"] = _assessment_latency(args, results["assessment_throughput"])
    if "scaling" in only:
        results["scaling"] = scaling(args.broker, args.tasks)
    if "operations" in only:
        results["operations"] = operations(args.broker, args.ops_tasks, args.redrive)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["machine"]["loadavg_end"] = machine()["loadavg"]
    if not args.no_plot and "scaling" in results:
        plot(results["scaling"], ROOT / "docs" / "scaling.png")
    return results


def _assessment_latency(args, throughput: dict) -> dict:
    """Enqueue -> result of real assessments on the default setup (embedded Redis, SQLite) and on Redis +
    PostgreSQL (`--database`, else a scratch database on the local server; skipped when there is none), each at
    half its own capacity (PostgreSQL's measured here, one worker process draining `--jobs`)."""
    from bench.assessment import assessment_throughput
    from bench.common import scratch_postgres
    from bench.latency import assessment_latency
    from bench.overhead import embedded_server

    per_process = throughput["jobs_per_s"]
    out: dict = {}
    server = embedded_server()
    try:
        out["default"] = assessment_latency(
            server.url, per_process, args.latency_seconds, setup="default: embedded Redis + SQLite"
        )
    finally:
        server.stop()

    def on_postgresql(url: str) -> dict:
        # half of *this* setup's capacity: a job costs more on PostgreSQL than on SQLite (its round trips), and
        # pacing it at SQLite's rate overran it (a queue, and enqueue -> result in seconds: stop 27's first runs)
        own = assessment_throughput(args.broker, args.jobs, None, log=lambda *_: None, database=url)["jobs_per_s"]
        return assessment_latency(args.broker, own, args.latency_seconds, url)

    try:
        if args.database:
            out["redis_postgresql"] = on_postgresql(args.database)
        else:
            with scratch_postgres() as url:
                out["redis_postgresql"] = on_postgresql(url)
    except Exception as exc:  # no PostgreSQL on this host: say so in the results
        out["redis_postgresql"] = {"skipped": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return out


def _stream_rows(label: str, indent: str, shape: dict, alone: dict, with_streams: dict) -> list[tuple]:
    """Two rows of one chat-stream shape: intake alone and with the streams, then the added first-token time."""
    ttft = f"{shape['added_ttft_p50_ms']} | {shape['added_ttft_p99_ms']}"
    return [
        (label, alone["requests_per_s"], with_streams["requests_per_s"], shape["intake_ratio_with_streams"]),
        (f"{indent}added time to first token p50 | p99 (ms)", "", ttft, ""),
    ]


def table(r: dict) -> str:
    """One row per figure of the benchmarks `r` holds (a run limited by `--only` has fewer rows)."""
    rows: list[tuple] = [("benchmark", "baseline", "coachup", "ratio")]
    if "task_throughput" in r:
        tp = r["task_throughput"]
        for broker in ("redis", "embedded"):
            rows.append(
                (
                    f"task throughput, {broker} (tasks/s)",
                    tp[broker]["baseline"],
                    tp[broker]["coachup"],
                    tp[broker]["ratio"],
                )
            )
            rows.append(
                (
                    f"  CPU ms/task, {broker}",
                    tp[broker]["cpu_ms_per_task"]["baseline"],
                    tp[broker]["cpu_ms_per_task"]["coachup"],
                    tp[broker].get("cpu_ratio", ""),
                )
            )
        dep = tp.get("deployment", {}).get("redis")
        if dep:
            rows.append(
                ("default deployment vs bare -c cores (tasks/s)", dep["baseline"], dep["coachup"], dep["ratio"])
            )
    if "assessment_throughput" in r:
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
    if "api_intake" in r:
        api = r["api_intake"]
        rows.append(
            (
                "API intake vs bare Flask+apply_async (req/s)",
                api["baseline"]["requests_per_s"],
                api["coachup"]["requests_per_s"],
                api["ratio"],
            )
        )
        for store, routes in api.get("stores", {}).items():
            for route, m in routes.items():
                fair, ours = m["fair_baseline"], m["coachup"]
                rows += _versus(f"API {route}, {store}, vs fair", fair, ours, m, "fair")
                rows.append(
                    (
                        "  p50 | p99 (ms)",
                        f"{fair['p50_ms']} | {fair['p99_ms']}",
                        f"{ours['p50_ms']} | {ours['p99_ms']}",
                        "",
                    )
                )
                same = m.get("same_work_baseline")
                if same:  # the baseline doing the route's durable work by hand (bench/durable_api.py)
                    rows += _versus(f"API {route}, {store}, vs same work", same, ours, m, "same_work")
    if "chat_streams" in r:
        cs = r["chat_streams"]
        label = f"intake with {cs['streams']} chat streams open (req/s)"
        rows += _stream_rows(label, "  ", cs, cs["gthread_intake_alone"], cs["gthread_intake_with_streams"])
        split = cs.get("split")
        if split:  # the Kubernetes shape: the streams on API processes of their own (deploy/k8s/ingress.yaml)
            label = "  streams on API processes of their own (req/s)"
            rows += _stream_rows(label, "    ", split, split["intake_alone"], split["intake_with_streams"])
    if "latency" in r:
        lat = r["latency"]
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
        for name, e2e in lat.get("assessment", {}).items():
            if "enqueue_to_result_ms" in e2e:
                rows.append(
                    (
                        f"  assessment e2e @ {e2e['rate_per_s']}/s, {name}: p50/p95/p99 ms",
                        "",
                        "/".join(str(v) for v in e2e["enqueue_to_result_ms"].values()),
                        "",
                    )
                )
    for p in r.get("scaling", {}).get("points", []):
        rows.append((f"scaling, {p['instances']} instance(s) (tasks/s)", "", p["tasks_per_s"], ""))
    if "operations" in r:
        ops = r["operations"]
        rows.append(("redrive (msgs/s)", "", ops["redrive"]["messages_per_s"], ""))
        rows.append(
            (
                f"/metrics scrape after {ops['tasks']} tasks (median ms)",
                ops["scrape_ms"]["fresh_median"],
                ops["scrape_ms"]["median"],
                "",
            )
        )
        rows.append(
            ("child RSS MiB (fresh -> after)", ops["child_rss_mib"]["fresh"], ops["child_rss_mib"]["after"], "")
        )
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
    parser.add_argument("--seconds", type=int, default=12, help="each wrk run (api_intake, chat_streams)")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=200, help="chat streams held open (chat_streams)")
    parser.add_argument(
        "--one-stream-seconds", type=float, default=10.0, help="streams timed one at a time, unloaded (chat_streams)"
    )
    parser.add_argument("--ops-tasks", type=int, default=20000)
    parser.add_argument("--redrive", type=int, default=5000)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the plumbing, not the speed")
    parser.add_argument(
        "--only",
        type=lambda text: [key for key in text.split(",") if key],
        default=None,
        help=f"comma-separated benchmarks to run (default all: {','.join(KEYS)}); latency needs task_throughput",
    )
    args = parser.parse_args(argv)
    unknown = set(args.only or ()) - set(KEYS)
    if unknown or ("latency" in (args.only or ()) and "task_throughput" not in args.only):
        parser.error(f"--only: unknown {sorted(unknown)} or latency without task_throughput")
    if args.quick:
        args.tasks, args.rounds, args.jobs, args.seconds = 300, 1, 10, 2
        args.latency_seconds, args.ops_tasks, args.redrive = 2.0, 300, 100
        args.streams, args.one_stream_seconds = 20, 5.0
    results = run(args)
    tmp = Path(args.output + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, args.output)
    print(table(results))
    print(f"wrote {args.output} in {results['elapsed_s']} s")
    return 0 if targets_met(results) else 1


def _versus(label: str, base: dict, ours: dict, m: dict, name: str) -> list[tuple]:
    """The req/s and CPU rows of one intake comparison (`ratio_<name>`, `cpu_ratio_<name>`)."""
    return [
        (f"{label} (req/s)", base["requests_per_s"], ours["requests_per_s"], m[f"ratio_{name}"]),
        (
            "  CPU ms/request (API+PG+Redis)",
            base["cpu_ms_per_request"]["total"],
            ours["cpu_ms_per_request"]["total"],
            m[f"cpu_ratio_{name}"],
        ),
    ]


def targets_met(results: dict) -> bool:
    """The targets of the benchmarks that ran: task throughput >= 0.90x bare and CPU per task <= 1.05x bare,
    the default deployment >= 1.5x bare; API intake >= 0.80x the fair baseline's req/s and <= 1.25x its CPU
    per request with p99 <= 15 ms (every route and store measured); chat streams
    (`bench.chat_streams.targets_met`) in either shape measured: one API serving everything, or the streams on
    API processes of their own (the Kubernetes shape, `split`)."""
    from bench.overhead import TARGET_CPU_RATIO, TARGET_DEPLOYMENT_RATIO

    ok = True
    if "task_throughput" in results:
        tp = results["task_throughput"]
        ok = ok and tp["ratio"] >= 0.90 and tp.get("cpu_ratio", 0) <= TARGET_CPU_RATIO
        if "deployment" in tp:
            ok = ok and tp["deployment"]["ratio"] >= TARGET_DEPLOYMENT_RATIO
    if "api_intake" in results:
        for routes in results["api_intake"].get("stores", {}).values():
            for m in routes.values():
                ok = ok and m["ratio_fair"] >= 0.80 and m["cpu_ratio_fair"] <= 1.25 and m["coachup"]["p99_ms"] <= 15.0
    if "chat_streams" in results:  # either shape: one API for everything, or streams split off (Kubernetes)
        cs = results["chat_streams"]
        ok = ok and (bool(cs.get("met")) or bool((cs.get("split") or {}).get("met")))
    return ok


if __name__ == "__main__":
    sys.exit(main())
