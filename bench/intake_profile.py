"""The intake routes in one process: CPU ms per request of the project and of both baselines, optionally profiled.

Posts `--requests` bodies (each a new session) through Flask's test client to the real app (`web.app.create_app`:
hooks, validation, store, the outbox relay thread), to `bench.fair_api` (one committed INSERT of the job row) and
to `bench.durable_api` (the same-work baseline: the intake's rows in one transaction, `send_task`, the mark),
alternating in rounds, and reports CPU ms per request of this process (every thread: the relay too) plus the
PostgreSQL backends serving it (found by `application_name`); a project round ends when its outbox relay has
published every row it committed, so the relay's CPU is counted in that round. No HTTP server, so gunicorn's own cost is not in
these figures (`bench.api` measures it), nor Redis's (both the relay and the same-work baseline publish); what is
left is the route's own code and the store. In one process, with the three alternating, these ratios are steadier
than `bench.api`'s under wrk on a shared host. Logs go to
/dev/null. `--profile FILE` writes a cProfile report (cumulative and own time) of the project's requests.

    python -m bench.intake_profile --route run --requests 2000 [--database postgresql://...] [--profile var/p.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid

__all__ = ["main"]

WARM = 50  # requests per app before the timed rounds


def _pg_cpu(database: str, app_name: str) -> float:
    if not database:
        return 0.0
    import psycopg

    from bench.api import _pg_dsn, _proc_cpu

    with psycopg.connect(_pg_dsn(database, "coachup-bench-monitor"), autocommit=True) as conn:
        pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app_name,))]
    return sum(_proc_cpu(p) or 0.0 for p in pids)


def _drained(app, timeout: float = 60.0) -> None:
    """Wait until the app's outbox relay has published every row (polled, with a deadline), then stop it."""
    from coachup.store import outbox

    store = app.extensions["coachup"].store
    deadline = time.monotonic() + timeout
    while outbox.backlog(store)[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.05)  # the relay's last mark and gauge update
    # and its thread ended: a relay with nothing owed still looks again after its retry interval, and that pass
    # would claim a baseline's rows committed meanwhile (the project's next request starts a new thread)
    relay = getattr(app.extensions["coachup"].celery, "outbox_relay", None)
    if relay is not None:
        relay.stop()


def _claimed(app) -> int:
    """Job rows some relay claimed (`publish_attempts` > 0)."""
    from sqlalchemy import func, select

    from coachup.store.models import Job

    with app.extensions["coachup"].store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Job).where(Job.publish_attempts > 0)) or 0)


def _settle_fair(app) -> None:
    """Mark the fair baseline's job rows published, outside the timed rounds.

    `bench.fair_api` commits unpublished rows (that is all it does) into the store the project shares here, and the
    project's relay claims the oldest pending rows first: left alone, the project's next round published the fair
    round's rows too and its CPU per request counted twice the publishes. (`bench.api` gives every server a
    store of its own.) Runs after the project's round was drained, so every pending row is the fair one's."""
    from sqlalchemy import update

    from coachup.store.models import Job, utcnow

    with app.extensions["coachup"].store.engine.begin() as conn:
        conn.execute(update(Job).where(Job.published_at.is_(None)).values(published_at=utcnow()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--route", choices=("run", "ingest"), default="run")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default="", help="PostgreSQL URL (default: SQLite in a temporary dir)")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--profile", default="", help="write a cProfile report of the project's requests here")
    args = parser.parse_args(argv)

    from bench.api import _body, _pg_dsn, prepare_database

    data_dir = tempfile.mkdtemp(prefix="coachup-intake-profile-")
    app_name = f"coachup-prof-{uuid.uuid4().hex[:8]}"
    os.environ.update(COACHUP_DATA_DIR=data_dir, COACHUP_BROKER_URL=args.broker, COACHUP_LOG_LEVEL="INFO")
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if args.database:
        prepare_database(args.database)
        os.environ["COACHUP_DATABASE_URL"] = _pg_dsn(args.database, app_name)
    # every log line to /dev/null (the API writes JSON lines to stdout); results go to stderr
    real_stdout = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    from web.app import create_app

    app = create_app()
    from bench import durable_api, fair_api

    clients = {
        "coachup": app.test_client(),
        "fair": fair_api.app.test_client(),
        "same_work": durable_api.app.test_client(),
    }
    path = {"run": "/assessments/run", "ingest": "/messages/ingest"}[args.route]
    template = json.dumps(_body(args.route))

    def post(client, n: int) -> None:
        for _ in range(n):
            body = template.replace('"SESSION"', json.dumps("prof-" + uuid.uuid4().hex))
            r = client.post(path, data=body, content_type="application/json")
            if r.status_code >= 300:
                raise RuntimeError(f"{r.status_code} {r.get_data(as_text=True)[:300]}")

    for name, c in clients.items():  # warm: imports, connections, caches
        post(c, WARM)
        if name == "coachup":
            _drained(app)
        if name == "fair":
            _settle_fair(app)
    # "request": this (the request) thread's CPU; the rest of the process's is its other threads', the outbox
    # relay's above all (it claims, publishes and marks every job the requests committed)
    totals = {k: {"api": 0.0, "request": 0.0, "postgresql": 0.0, "n": 0} for k in clients}
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    per_round = max(1, args.requests // args.rounds)
    for _ in range(args.rounds):
        for name, client in clients.items():
            pg0, cpu0, own0 = _pg_cpu(args.database, app_name), time.process_time(), time.thread_time()
            if profiler is not None and name == "coachup":
                profiler.enable()
            post(client, per_round)
            if profiler is not None and name == "coachup":
                profiler.disable()
            own = time.thread_time() - own0
            if name == "coachup":  # the relay publishes what this round committed: its CPU is this round's
                _drained(app)
            totals[name]["api"] += time.process_time() - cpu0
            totals[name]["request"] += own
            totals[name]["postgresql"] += _pg_cpu(args.database, app_name) - pg0
            totals[name]["n"] += per_round
            if name == "fair":  # untimed
                _settle_fair(app)
    out: dict = {
        "route": args.route,
        "store": "postgresql" if args.database else "sqlite",
        "requests": per_round * args.rounds,
    }
    for name, t in totals.items():
        out[name] = {
            "api_ms": round(t["api"] * 1000 / t["n"], 3),
            "api_request_thread_ms": round(t["request"] * 1000 / t["n"], 3),
            "api_other_threads_ms": round((t["api"] - t["request"]) * 1000 / t["n"], 3),
            "postgresql_ms": round(t["postgresql"] * 1000 / t["n"], 3),
            "total_ms": round((t["api"] + t["postgresql"]) * 1000 / t["n"], 3),
        }
    out["cpu_ratio_fair"] = round(out["coachup"]["total_ms"] / out["fair"]["total_ms"], 3)
    out["cpu_ratio_same_work"] = round(out["coachup"]["total_ms"] / out["same_work"]["total_ms"], 3)
    # the check on `_settle_fair`: the relay published the project's rows and no other (each claim counts one
    # publish attempt; the same-work baseline marks its own rows without one)
    out["relay_published_only_project_rows"] = _claimed(app) == WARM + per_round * args.rounds
    os.dup2(real_stdout, 1)
    if profiler is not None:
        import io
        import pstats

        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf)
        stats.sort_stats("cumulative").print_stats(60)
        stats.sort_stats("tottime").print_stats(40)
        with open(args.profile, "w") as f:
            f.write(buf.getvalue())
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
