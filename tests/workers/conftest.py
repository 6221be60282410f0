"""A worker with the test-only tasks (`COACHUP_TEST_TASKS=1`) on Redis and on the embedded broker.

- `inproc`: Celery's own test worker (`celery.contrib.testing.worker.start_worker`) in this process, on a
  private Redis and on the embedded broker: retries and dead letters without a subprocess.
- `drill`: a real worker subprocess (prefork), for what only a process shows: a SIGKILLed child, a hard
  time limit, Flower, the CLI against a live worker.

Redis here is a private server on a free port: a drill worker must not share a database with the main
`stack` worker (that one has no `testing.*` tasks and would drop them).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from coachup.settings import Settings, load_settings
from tests.conftest import stack_env
from tests.support.services import EmbeddedBrokerServer, PostgresDatabase, PrivateRedis
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess

DLQ_STACKS = {"redis-postgres": ("redis", "postgres"), "embedded-sqlite": ("embedded", "sqlite")}
DRILL_ENV = {
    "COACHUP_TEST_TASKS": "1",
    "COACHUP_MAX_REDELIVERIES": "2",
    "COACHUP_MAX_REDRIVES": "2",
    "ASSESSMENTS_BACKOFF_BASE_MS": "50",
}


@dataclass
class DrillStack:
    name: str
    env: dict[str, str]
    settings: Settings
    data_dir: Path
    worker: WorkerProcess
    celery: object

    @property
    def source(self):
        from coachup.store.deadletters import StoreDeadLetters

        return StoreDeadLetters(self.celery.coachup.store)

    def send(self, task: str, key: str | None = None, **headers) -> str:
        """Publish `task(key)` with task id = request id = key (a UUIDv4); return the key."""
        key = key or str(uuid.uuid4())
        self.celery.send_task(task, args=[key], task_id=key, ignore_result=True, headers={"requestId": key, **headers})
        return key

    def runs(self, key: str) -> list[tuple[float, int]]:
        """(time, retries) of each run of the test task body for `key`."""
        path = self.data_dir / "testing" / "runs" / key
        if not path.exists():
            return []
        return [(float(a), int(b)) for a, b in (line.split() for line in path.read_text().splitlines())]

    def fix(self, key: str) -> None:
        """`testing.fixable(key)` succeeds from now on."""
        folder = self.data_dir / "testing" / "fixed"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / key).touch()

    def cli(self, *args: str, **popen):
        """`coachup <args>` as a real subprocess with this stack's environment."""
        import os
        import subprocess
        import sys

        return subprocess.Popen(
            [sys.executable, "-m", "coachup.cli", *args],
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
            **popen,
        )

    def events(self, name: str | None = None) -> list[dict]:
        return self.worker.events(name)

    def effect(self, key: str) -> bool:
        return (self.data_dir / "testing" / "effects" / key).exists()

    def wait(self, probe, *, timeout: float = 30, what: str):
        """`wait_until`, failing with the tail of the worker's log (what the worker was doing)."""
        try:
            return wait_until(probe, timeout=timeout, what=what)
        except AssertionError as exc:
            tail = self.worker.log_text()[-4000:] if hasattr(self.worker, "log_text") else ""
            raise AssertionError(f"{exc}\n--- worker log tail ---\n{tail}") from None

    def letter(self, key: str, redrives: int = 0, timeout: float = 30):
        return self.wait(lambda: self.source.get(f"{key}.{redrives}"), timeout=timeout, what=f"dead letter {key}")


@pytest.fixture(scope="session", params=list(DLQ_STACKS), ids=list(DLQ_STACKS))
def drill(request, tmp_path_factory):
    """A worker (`-c 2`) with the test tasks, max 2 redeliveries and 2 redrives, on its own broker."""
    broker, store = DLQ_STACKS[request.param]
    data_dir = tmp_path_factory.mktemp("dlq-" + request.param)
    redis = PrivateRedis() if broker == "redis" else None
    pg = PostgresDatabase() if store == "postgres" else None
    env = stack_env(data_dir, broker, store, None, pg, **DRILL_ENV)
    if redis is not None:
        env["COACHUP_BROKER_URL"] = redis.url
    settings = load_settings(env)
    embedded = EmbeddedBrokerServer(settings) if broker == "embedded" else None
    from workers import create_celery

    celery = create_celery(settings)
    _ = celery.coachup.store  # schema before the worker races for it
    worker = WorkerProcess(env, data_dir / "worker.log", name=f"dlq-{request.param}").wait_ready()
    yield DrillStack(request.param, env, settings, data_dir, worker, celery)
    worker.stop(timeout=10)  # a killed-child pool can hang a warm shutdown
    celery.coachup.store.engine.dispose()
    if embedded is not None:
        embedded.close()
    if pg is not None:
        pg.drop()
    if redis is not None:
        redis.close()


@dataclass
class InprocStack(DrillStack):
    """`DrillStack`'s API over an in-process worker; `events` come from this process's JSON log lines."""

    lines: list[str] = field(default_factory=list)

    def events(self, name: str | None = None) -> list[dict]:
        out = [json.loads(line) for line in list(self.lines)]
        return [e for e in out if name is None or e.get("event") == name]


class _Keep(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture(scope="module", params=list(DLQ_STACKS), ids=list(DLQ_STACKS))
def inproc(request, tmp_path_factory):
    """Celery's test worker (solo pool) in this process, with the test tasks, on its own broker."""
    from celery.app import trace
    from celery.contrib.testing.worker import start_worker

    from coachup.logs import _CoachupFormatter
    from workers import create_celery

    broker, store = DLQ_STACKS[request.param]
    data_dir = tmp_path_factory.mktemp("inproc-" + request.param)
    redis = PrivateRedis() if broker == "redis" else None
    pg = PostgresDatabase() if store == "postgres" else None
    env = stack_env(data_dir, broker, store, None, pg, **DRILL_ENV)
    if redis is not None:
        env["COACHUP_BROKER_URL"] = redis.url
    settings = load_settings(env)
    embedded = EmbeddedBrokerServer(settings) if broker == "embedded" else None
    celery = create_celery(settings)
    _ = celery.coachup.store
    lines: list[str] = []
    handler = _Keep(lines)
    handler.setFormatter(_CoachupFormatter("worker", "test"))
    logger = logging.getLogger("coachup")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    worker_name = f"dlq-inproc-{request.param}@host"
    # what a real worker does at start: requests carry the worker's node name (the letter's `worker`)
    trace.setup_worker_optimizations(celery, worker_name)
    with start_worker(
        celery, perform_ping_check=False, loglevel="WARNING", hostname=worker_name, shutdown_timeout=20
    ) as worker:
        yield InprocStack(request.param, env, settings, data_dir, worker, celery, lines)  # type: ignore[arg-type]
    trace.reset_worker_optimizations(celery)
    logger.removeHandler(handler)
    logger.level = level
    celery.coachup.store.engine.dispose()
    if embedded is not None:
        embedded.close()
    if pg is not None:
        pg.drop()
    if redis is not None:
        redis.close()
