"""The outbox relay's CPU per job at a fixed number of rows per pass, in one process.

Commits `--rows` job rows through the real `POST /assessments/run` (Flask test client) with the relay off, then
publishes them with `workers.relay.relay_pass` at `--batches` rows a pass (each value in turn, fresh rows for
each) and reports the CPU time of the publishing thread per job: the claim, the publishes and the mark, as the API's
relay thread pays them. Redis at `--broker` (its database is flushed first); PostgreSQL at `--database`
(created when missing and emptied) or, without it, SQLite in a temporary data dir. Logs go to /dev/null.

    python -m bench.relay_cost --database postgresql://postgres@127.0.0.1:5432/bench --batches 1,4,16
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1200)
    parser.add_argument("--batches", default="1,4,16", help="rows per pass, comma-separated, run in turn")
    parser.add_argument("--database", default="", help="PostgreSQL URL (default: SQLite in a temporary dir)")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/8")
    args = parser.parse_args(argv)

    from bench.api import _body, _pg_dsn, prepare_database

    os.environ.update(COACHUP_DATA_DIR=tempfile.mkdtemp(prefix="coachup-relay-cost-"), COACHUP_BROKER_URL=args.broker)
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if args.database:
        prepare_database(args.database)
        os.environ["COACHUP_DATABASE_URL"] = _pg_dsn(args.database, f"coachup-relay-{uuid.uuid4().hex[:8]}")
    real_stdout = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the API's JSON log lines
    import redis

    redis.Redis.from_url(args.broker).flushdb()
    import web.routes.assessments as assessments_route
    from web.app import create_app
    from workers import relay

    app = create_app()
    rt = app.extensions["coachup"]
    assessments_route.notify = lambda *_a, **_kw: None  # the route commits its job row; nothing publishes it
    metrics = app.extensions["coachup_metrics"]
    client = app.test_client()
    template = json.dumps(_body("run"))
    out: dict = {"store": "postgresql" if args.database else "sqlite", "rows": args.rows, "cpu_ms_per_job": {}}
    for batch in [int(b) for b in args.batches.split(",") if b]:
        for _ in range(args.rows):
            body = template.replace('"SESSION"', json.dumps("relay-" + uuid.uuid4().hex))
            r = client.post("/assessments/run", data=body, content_type="application/json")
            if r.status_code >= 300:
                raise RuntimeError(f"{r.status_code} {r.get_data(as_text=True)[:300]}")
        began, published = time.thread_time(), 0
        while True:
            result = relay.relay_pass(rt.celery, rt.store, rt.hasher, limit=batch, metrics=metrics)
            published += result.published
            if result.published == 0:
                break
        per_job = (time.thread_time() - began) * 1000 / max(published, 1)
        out["cpu_ms_per_job"][str(batch)] = round(per_job, 3)
    os.write(real_stdout, (json.dumps(out) + "\n").encode())  # fd 1 stays on /dev/null: late log lines go there
    return 0


if __name__ == "__main__":
    sys.exit(main())
