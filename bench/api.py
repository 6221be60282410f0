"""Benchmark 3, API intake: `POST /assessments/run` and `POST /messages/ingest` under gunicorn and wrk, next to
two bare Flask apps, with the CPU each request costs.

Every server runs the project's default server model (`coachup api`: gunicorn, 2 gthread workers, 240 threads
each) on loopback; wrk (1 thread, 8 connections) posts for `--seconds` (>= 15), each request a new session.

- `baseline` (`bench.bare_api`): bare Flask + `send_task` (the old comparison; no store at all).
- `fair_baseline` (`bench.fair_api`): bare Flask + one committed `INSERT` of an equivalent job row (psycopg or
  sqlite3, reused connection) and **no publish**: since the outbox (issue 16) the project's routes do not
  publish either; its relay thread does, off the request path (its CPU counts in the project's API process).
- `coachup` (`web.wsgi:app` with `web.gunicorn_conf`): the real routes. `POST /assessments/run` with a 4-turn
  inline transcript and 3 tracked skills; `POST /messages/ingest` with one closing turn (a farewell), so it
  stores the turn, closes the group and writes the assessment's job row.

CPU per request = (API processes + the PostgreSQL backends of that server + the broker's Redis) CPU seconds,
read from /proc before and after the wrk run, over the requests served. PostgreSQL backends are found by their
`application_name` (sampled every 0.5 s, so a backend that exits mid-run keeps its last reading). The shared
Redis also serves other clients: its share is reported apart (`cpu_ms_per_request.redis`).

Ratios: `ratio` = coachup / bare req/s; `ratio_fair` = coachup / fair req/s (target >= 0.80); `cpu_ratio_fair` =
coachup / fair CPU ms per request (target <= 1.25); p99 <= 15 ms. Run on SQLite always and on PostgreSQL when
`--database` names one (the bench creates that database when missing and empties its tables before each server).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from bench.assessment import SKILLS, TURNS
from bench.common import ROOT, bench_env, cpu_seconds, free_port, fresh_data_dir, load_average

__all__ = [
    "api_intake",
    "parse_wrk",
    "TARGET_RATIO",
    "TARGET_P99_MS",
    "TARGET_CPU_RATIO",
    "CLOSING_TURN",
    "server_argv",
    "Server",
]

TARGET_RATIO = 0.80
TARGET_CPU_RATIO = 1.25
TARGET_P99_MS = 15.0
THREADS = 240  # `COACHUP_API_THREADS`' default: the project's server model
CLOSING_TURN = "Thanks so much for the practice today, goodbye!"
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
ROUTES = {"run": "/assessments/run", "ingest": "/messages/ingest"}


def _body(route: str) -> dict:
    if route == "run":
        return {
            "sessionId": "SESSION",
            "trackedSkills": SKILLS,
            "transcript": [{"role": role, "content": content} for role, content in TURNS],
        }
    return {"sessionId": "SESSION", "messageId": "m1", "role": "user", "content": CLOSING_TURN}


def _lua(path: Path, route: str) -> None:
    """A wrk script posting the same body for a new session id each request (no row contention). The script is
    written afresh for each wrk run: its session ids carry a tag of their own, so a measured run never meets the
    sessions its warm-up created (wrk's `math.random` is unseeded: the same "random" tag every run, which made
    the first ~2 s of each measured run re-send the warm-up's sessions)."""
    head, tail = json.dumps(_body(route)).split('"SESSION"')
    path.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local n = 0\nlocal tag = "{uuid.uuid4().hex[:12]}"\n'
        "request = function()\n  n = n + 1\n"
        f"  local body = {json.dumps(head)} .. '\"bench-' .. tag .. '-' .. n .. '\"' .. {json.dumps(tail)}\n"
        "  return wrk.format(nil, nil, nil, body)\nend\n"
    )


def parse_wrk(text: str) -> dict:
    """requests/s, p50 and p99 (ms), non-2xx count from `wrk --latency` output."""

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        return round(float(m.group(1)) * _UNITS[m.group(2)], 3) if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    total = re.search(r"(\d+) requests in", text)
    return {
        "requests_per_s": float(rps.group(1)) if rps else 0.0,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "requests": int(total.group(1)) if total else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def server_argv(target: str, port: int, project: bool) -> list[str]:
    """gunicorn as `coachup api` runs it: 2 gthread workers x 240 threads (the project's own worker class,
    hooks and config for the project; plain gthread for the bare apps)."""
    argv = [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", str(THREADS)]
    argv += ["--bind", f"127.0.0.1:{port}"]
    if project:
        argv += ["--worker-class", "web.gunicorn_worker.JsonErrorWorker", "-c", "python:web.gunicorn_conf"]
    else:
        argv += ["--worker-class", "gthread"]
    return [*argv, target]


class Server:
    """One gunicorn in its own session; its CPU (master + workers) and its PostgreSQL backends' CPU."""

    def __init__(self, target: str, env: dict, project: bool) -> None:
        self.port = free_port()
        self.app_name = env.get("BENCH_PG_APP", "")
        self.database = env.get("COACHUP_DATABASE_URL", "")
        self.log_path = Path(env["COACHUP_DATA_DIR"]) / "gunicorn.log"
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            server_argv(target, self.port, project),
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._backends: dict[int, tuple[float, float]] = {}  # pid -> (first, last) CPU seconds seen
        self._stop_sampling = threading.Event()
        self._sampler: threading.Thread | None = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn {target} exited; see {self.log_path}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/nothing-here", timeout=1)
            except urllib.error.HTTPError:
                return  # any HTTP answer: a worker is up
            except OSError:
                time.sleep(0.1)
                continue
            return
        raise RuntimeError(f"gunicorn {target} did not answer within 60 s")

    def url(self, route: str) -> str:
        return f"http://127.0.0.1:{self.port}{ROUTES[route]}"

    # PostgreSQL backends of this server, by application_name
    def _sample(self, monitor) -> None:
        pids = [
            r[0]
            for r in monitor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self.app_name,))
        ]
        for pid in pids:
            cpu = _proc_cpu(pid)
            if cpu is None:
                continue
            first, _ = self._backends.get(pid, (cpu, cpu))
            self._backends[pid] = (first, cpu)

    def start_sampling(self) -> None:
        self._backends.clear()
        if not self.app_name:
            return
        import psycopg

        monitor = psycopg.connect(_pg_dsn(self.database, "coachup-bench-monitor"), autocommit=True)
        self._sample(monitor)
        self._stop_sampling.clear()

        def loop() -> None:
            try:
                while not self._stop_sampling.wait(0.5):
                    self._sample(monitor)
                self._sample(monitor)
            finally:
                monitor.close()

        self._sampler = threading.Thread(target=loop, daemon=True)
        self._sampler.start()

    def stop_sampling(self) -> float:
        """CPU seconds the server's PostgreSQL backends used since `start_sampling`."""
        if self._sampler is None:
            return 0.0
        self._stop_sampling.set()
        self._sampler.join(10)
        self._sampler = None
        return sum(last - first for first, last in self._backends.values())

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def _proc_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pg_dsn(url: str, app_name: str) -> str:
    """A libpq URL (no SQLAlchemy driver suffix) carrying `application_name`."""
    url = re.sub(r"^postgres(ql)?(\+psycopg)?://", "postgresql://", url)
    url = re.sub(r"[?&]application_name=[^&]*", "", url)
    return f"{url}{'&' if '?' in url else '?'}application_name={app_name}"


def _redis_pid(broker: str) -> int | None:
    if not broker.startswith("redis://"):
        return None
    try:
        import redis

        return int(redis.Redis.from_url(broker).info("server")["process_id"])
    except Exception:
        return None


def prepare_database(url: str) -> None:
    """Create the benchmark database if missing, the project's schema, and empty every table but the catalogue."""
    import psycopg
    from sqlalchemy import text

    from coachup.store import create_store
    from coachup.store.models import Base

    dsn = _pg_dsn(url, "coachup-bench-setup")
    name = re.sub(r"\?.*$", "", dsn).rsplit("/", 1)[1]
    admin = re.sub(r"/[^/?]*(\?|$)", r"/postgres\1", dsn, count=1) if "/" in dsn.split("://", 1)[1] else dsn
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    store = create_store(url)
    tables = [t.name for t in Base.metadata.sorted_tables if t.name != "skills"]
    with store.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(tables)}"))
    store.engine.dispose()


def _one(target: str, broker: str, seconds: int, project: bool, script: Path, route: str, database: str) -> dict:
    data_dir = fresh_data_dir(broker)
    extra: dict = {}
    if database:
        prepare_database(database)
        app_name = f"coachup-bench-{uuid.uuid4().hex[:8]}"
        extra = {"COACHUP_DATABASE_URL": _pg_dsn(database, app_name), "BENCH_PG_APP": app_name}
    else:  # the project's schema in the fresh SQLite file (the fair app does not create it)
        from coachup.store import create_store

        create_store(f"sqlite:///{data_dir}/coachup.sqlite").engine.dispose()
    server = Server(target, bench_env(broker, data_dir, **extra), project)
    redis_pid = _redis_pid(broker)
    try:
        url = server.url(route)
        # one request answered first (a worker's first request builds its Celery app and connections), then
        # warm both workers before measuring
        body = json.dumps(_body(route)).replace('"SESSION"', json.dumps("bench-warm-" + uuid.uuid4().hex))
        warm = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(warm, timeout=60).read()
        _lua(script, route)
        subprocess.run(["wrk", "-t1", "-c8", "-d2s", "-s", str(script), url], capture_output=True, check=True)
        _lua(script, route)  # the measured run's own sessions
        server.start_sampling()
        api0 = cpu_seconds(server.proc.pid)
        redis0 = cpu_seconds(redis_pid) if redis_pid else 0.0
        out = subprocess.run(
            ["wrk", "-t1", "-c8", f"-d{seconds}s", "--latency", "-s", str(script), url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        time.sleep(0.3)  # the relay's last publishes (the project) land before the reading
        api = cpu_seconds(server.proc.pid) - api0
        redis_cpu = (cpu_seconds(redis_pid) - redis0) if redis_pid else 0.0
        pg = server.stop_sampling()
    finally:
        server.stop()
    result = parse_wrk(out)
    n = max(result["requests"], 1)
    result["cpu_ms_per_request"] = {
        "api": round(api * 1000 / n, 3),
        "postgresql": round(pg * 1000 / n, 3),
        "redis": round(redis_cpu * 1000 / n, 3),
        "total": round((api + pg + redis_cpu) * 1000 / n, 3),
    }
    result["loadavg"] = load_average()
    return result


def _ratios(coachup: dict, fair: dict, name: str = "fair") -> dict:
    rps = coachup["requests_per_s"] / fair["requests_per_s"] if fair["requests_per_s"] else 0.0
    cpu_f, cpu_c = fair["cpu_ms_per_request"]["total"], coachup["cpu_ms_per_request"]["total"]
    return {f"ratio_{name}": round(rps, 3), f"cpu_ratio_{name}": round(cpu_c / cpu_f, 3) if cpu_f else 0.0}


def store_run(broker: str, seconds: int, database: str, log=print) -> dict:
    """Fair baseline and project for both routes on one store (`database`: PostgreSQL URL, empty: SQLite)."""
    store = "postgresql" if database else "sqlite"
    work = Path(tempfile.mkdtemp(prefix="coachup-bench-wrk-"))
    out: dict = {}
    for route in ROUTES:
        script = work / f"{route}.lua"
        _lua(script, route)
        fair = _one("bench.fair_api:app", broker, seconds, False, script, route, database)
        log(f"api_intake {store} {route} fair: {fair}")
        durable = _one("bench.durable_api:app", broker, seconds, False, script, route, database)
        log(f"api_intake {store} {route} same work: {durable}")
        coachup = _one("web.wsgi:app", broker, seconds, True, script, route, database)
        log(f"api_intake {store} {route} coachup: {coachup}")
        out[route] = {
            "fair_baseline": fair,
            "same_work_baseline": durable,
            "coachup": coachup,
            **_ratios(coachup, fair),
            **_ratios(coachup, durable, "same_work"),
        }
    shutil.rmtree(work, ignore_errors=True)
    return out


def api_intake(broker: str, seconds: int = 15, database: str = "", log=print) -> dict:
    """Both baselines and the project under the same load, on SQLite and (with `database`) PostgreSQL.

    The top-level `baseline`, `fair_baseline`, `coachup` and ratios are `POST /assessments/run` on the main
    store (PostgreSQL when given); `stores` holds every route on every store."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="coachup-bench-wrk-"))
    _lua(work / "run.lua", "run")
    main = "postgresql" if database.startswith("postgres") else "sqlite"
    bare = _one("bench.bare_api:app", broker, seconds, False, work / "run.lua", "run", database)
    log(f"api_intake bare: {bare}")
    stores = {"sqlite": store_run(broker, seconds, "", log)}
    if main == "postgresql":
        stores["postgresql"] = store_run(broker, seconds, database, log)
    top = stores[main]["run"]
    coachup = top["coachup"]
    ratio = coachup["requests_per_s"] / bare["requests_per_s"] if bare["requests_per_s"] else 0.0
    shutil.rmtree(work, ignore_errors=True)
    return {
        "baseline": bare,
        "fair_baseline": top["fair_baseline"],
        "coachup": coachup,
        "ratio": round(ratio, 3),
        "ratio_fair": top["ratio_fair"],
        "cpu_ratio_fair": top["cpu_ratio_fair"],
        "stores": stores,
        "same_work_baseline": top["same_work_baseline"],
        "ratio_same_work": top["ratio_same_work"],
        "cpu_ratio_same_work": top["cpu_ratio_same_work"],
        "fair_baseline_does": "one committed INSERT of the job row, no publish (the outbox relay publishes)",
        "same_work_baseline_does": (
            "one transaction: session, closed group, turns, job row; then send_task and the row marked published"
        ),
        "seconds": seconds,
        "gunicorn_workers": 2,
        "threads": THREADS,
        "server_model": "gthread (coachup api's default)",
        "connections": 8,
        "store": main,
        "target_ratio": TARGET_RATIO,
        "target_cpu_ratio": TARGET_CPU_RATIO,
        "target_p99_ms": TARGET_P99_MS,
    }
