"""A worker with the test-only tasks (`COACHUP_TEST_TASKS=1`) on Redis and on the embedded broker.

Redis here is a private redis-server on a free port: the drill worker must not share a database with
the main `stack` worker (that one has no `testing.*` tasks and would drop them).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
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

    def effect(self, key: str) -> bool:
        return (self.data_dir / "testing" / "effects" / key).exists()

    def wait(self, probe, *, timeout: float = 30, what: str):
        """`wait_until`, failing with the tail of the worker's log (what the worker was doing)."""
        try:
            return wait_until(probe, timeout=timeout, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log tail ---\n{self.worker.log_text()[-4000:]}") from None

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
