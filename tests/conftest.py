"""Shared fixtures: one real stack (broker + store + worker subprocess) per broker/store combination.

`stack` is parametrised over the broker matrix; pytest groups the tests by stack, so each combination
starts one worker for the whole session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from coachup.settings import Settings, load_settings
from tests.support.moto import sqs_stack_env
from tests.support.services import SHARED_REDIS_PORT, EmbeddedBrokerServer, PostgresDatabase, redis_db, redis_url
from tests.support.worker import WorkerProcess

_LEAK_SCAN = pytest.StashKey["object"]()

# test-only secret: recognisable so the leak scans can look for raw values around it
TEST_HASH_SECRET = "test-hash-secret-7f3a"

# Redis databases: one named slot per concurrently living fixture (tests/support/services.py, REDIS_SLOTS), all on
# the suite's own private Redis; the embedded stack runs its own server in its data dir, as `make run` does

STACKS = {
    # name: (broker, store, redis db)
    "redis-postgres": ("redis", "postgres", redis_db("stack-postgres")),
    "embedded-sqlite": ("embedded", "sqlite", None),
    "redis-sqlite": ("redis", "sqlite", redis_db("stack-sqlite")),
    "sqs-sqlite": ("sqs", "sqlite", None),
}


def pytest_addoption(parser):
    parser.addoption("--skip-drills", action="store_true", help="skip the long fault drills (CI always runs them)")


@pytest.fixture(scope="session", autouse=True)
def shared_redis_tripwire():
    """Fail any connection this test process makes to the machine's shared Redis (127.0.0.1:6379)."""
    import redis.connection

    original = redis.connection.Connection._connect

    def guarded(self):
        if int(getattr(self, "port", 0) or 0) == SHARED_REDIS_PORT and self.host in ("127.0.0.1", "localhost"):
            raise AssertionError("a test connected to the shared Redis on 127.0.0.1:6379; start a private one")
        return original(self)

    redis.connection.Connection._connect = guarded
    yield
    redis.connection.Connection._connect = original


@pytest.fixture(scope="session", autouse=True)
def outbox_relays_stopped_at_session_end():
    """Every outbox relay thread of this process ends before pytest closes its streams (a thread still waiting on
    a dead broker would log after the summary, to a closed stream)."""
    yield
    from workers.relay import stop_relays

    stop_relays()


@pytest.fixture(autouse=True)
def outbox_relays_stopped_after_each_test():
    """The relay threads of apps a test created in-process stop with the test (apps of wider fixtures keep theirs).
    A stop loses nothing: unpublished rows stay in the outbox for the next relay."""
    import weakref

    from workers.relay import relays

    before = weakref.WeakSet(relays())
    yield
    for relay in relays():
        if relay not in before:
            relay.stop()


def _coachup_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(("COACHUP_", "AI_PROVIDER", "AUTH_"))}


@pytest.fixture(autouse=True)
def coachup_environ_unchanged():
    """Fail a test that leaves coachup's variables changed in this process (every later test would inherit
    them: a leaked COACHUP_BROKER_URL once sent 26 embedded-broker tests to a server that had gone), and put
    them back so only that test fails."""
    before = _coachup_environ()
    yield
    after = _coachup_environ()
    if after != before:
        for key in set(after) - set(before):
            del os.environ[key]
        os.environ.update(before)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        pytest.fail(f"the test left these variables changed in the test process: {changed}", pytrace=False)


@pytest.hookimpl(tryfirst=True)  # before the tmp_path plugin may remove the base temp directory
def pytest_sessionfinish(session, exitstatus):
    """The leak scan of the whole run, once, after every other test: a hit fails the run (tests/support/leaks.py)."""
    from tests.support.leaks import dump_kept, scan_run

    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or session.config.getoption("collectonly", False):
        return
    basetemp = factory.getbasetemp()
    worker = getattr(session.config, "workerinput", None)
    if worker is not None:  # an xdist worker: hand what it kept to the controller, which scans everything
        dump_kept(basetemp, worker["workerid"])
        return
    result = scan_run(basetemp)  # under xdist the workers' base temp directories are inside the controller's
    session.config.stash[_LEAK_SCAN] = result
    if result.hits:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    result = config.stash.get(_LEAK_SCAN, None)
    if result is None:
        return
    terminalreporter.write_line(result.summary(), red=bool(result.hits), bold=bool(result.hits))
    for source, needle, excerpt in result.hits[:20]:
        terminalreporter.write_line(f"  LEAK in {source}: {needle!r} in ...{excerpt}...", red=True)


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--skip-drills"):
        return
    skip = pytest.mark.skip(reason="--skip-drills given (CI runs them)")
    for item in items:
        if "drill" in item.keywords:
            item.add_marker(skip)


@dataclass
class Stack:
    name: str
    env: dict[str, str]
    settings: Settings
    data_dir: Path
    worker: WorkerProcess | None = None
    _closers: list = field(default_factory=list)

    def app(self):
        from web import create_app

        return create_app(self.settings, configure_logs=False)


def stack_env(
    data_dir: Path, broker: str, store: str, redis_db: int | None, pg: PostgresDatabase | None, **extra: str
) -> dict[str, str]:
    env = {
        "COACHUP_ENV": "test",
        "COACHUP_DATA_DIR": str(data_dir),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_LOG_LEVEL": "INFO",
        "INTERACTION_IDLE_TIMEOUT_MS": "1500",
        "ASSESSMENTS_BACKOFF_BASE_MS": "50",
        "COACHUP_WORKER_METRICS_PORT": "0",  # shared stacks serve no endpoint: 9540 may be taken on this host
    }
    if broker == "redis":
        env["COACHUP_BROKER_URL"] = redis_url(redis_db)
    if store == "postgres":
        env["COACHUP_DATABASE_URL"] = pg.url
    env.update(extra)
    return env


@pytest.fixture(scope="session", params=list(STACKS), ids=list(STACKS))
def stack(request, tmp_path_factory):
    """A running stack: broker, store and one worker subprocess consuming every queue."""
    broker, store, redis_db = STACKS[request.param]
    data_dir = tmp_path_factory.mktemp(request.param)
    pg = PostgresDatabase() if store == "postgres" else None
    extra = sqs_stack_env(request.getfixturevalue("moto_sqs"), "e2e") if broker == "sqs" else {}
    env = stack_env(data_dir, broker, store, redis_db, pg, **extra)
    settings = load_settings(env)
    embedded = EmbeddedBrokerServer(settings) if broker == "embedded" else None
    if broker == "sqs":
        from coachup.sqs.admin import bootstrap

        bootstrap(settings)
    from coachup.store import create_store

    create_store(settings.database_url)  # schema before the worker and the API race for it
    worker = WorkerProcess(env, data_dir / "worker.log", name=f"t-{request.param}").wait_ready()
    s = Stack(request.param, env, settings, data_dir, worker)
    yield s
    worker.stop()
    if embedded is not None:
        embedded.close()
    if pg is not None:
        pg.drop()


@pytest.fixture(scope="session")
def moto_sqs(tmp_path_factory):
    """One local SQS (moto server) for the session; its credentials are exported for in-process clients."""
    from tests.support.moto import MotoServer

    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    yield server
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """A fresh, empty store URL on each database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
        return
    pg = PostgresDatabase()
    yield pg.url
    pg.drop()


@pytest.fixture
def offline_settings(tmp_path):
    """Settings for in-process tests on the embedded broker (its server running) and SQLite under a temp dir."""
    settings = load_settings(
        {"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_HASH_SECRET": TEST_HASH_SECRET, "COACHUP_ENV": "test"}
    )
    server = EmbeddedBrokerServer(settings)
    yield settings
    server.close()


@pytest.fixture(scope="session")
def scratch_dir():
    path = Path(tempfile.mkdtemp(prefix="coachup-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
