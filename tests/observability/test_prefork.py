"""Prefork correctness: a pool child killed with SIGKILL mid-task leaves no in-progress gauge stuck, and a
failure reported twice for one task id (Celery's hard time limit path) is counted once.
"""

from __future__ import annotations

import os
import re
import signal
import uuid

import pytest

from coachup.metrics import multiproc
from tests.observability.conftest import obs_env
from tests.observability.promtext import value
from tests.support.fake_openai import ScriptedOpenAI
from tests.support.services import EmbeddedBrokerServer, free_port, redis_db, redis_url
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, pool_children

ASSESS = "assessments.run"


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """A worker whose first assessment's provider calls hang until released."""
    data_dir = tmp_path_factory.mktemp("prefork")
    fake = ScriptedOpenAI(hold_calls=3).start()
    port = free_port()
    env = obs_env(data_dir, redis_url(redis_db("observability-scratch")), fake, port)
    from coachup.settings import load_settings
    from coachup.store import create_store
    from web import create_app

    settings = load_settings(env)
    create_store(settings.database_url)
    worker = WorkerProcess(env, data_dir / "worker.log", name="prefork").wait_ready()
    app = create_app(settings, configure_logs=False)
    yield worker, fake, f"http://127.0.0.1:{port}/metrics", app.test_client(), settings.metrics_root / f"worker-{port}"
    worker.stop()
    fake.stop()


def _scrape(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def test_sigkilled_child_leaves_no_in_progress_gauge(held, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    worker, fake, url, client, folder = held
    # Given an assessment whose provider calls hang, so the task is in progress in one pool child
    session = "sess-" + uuid.uuid4().hex[:8]
    for i, text in enumerate(
        ["HOLDME first turn here, where I explain the plan for the launch.", "And the last one. Thanks, that's all."]
    ):
        body = {"sessionId": session, "messageId": f"m{i}", "role": "user", "content": text}
        resp = client.post("/messages/ingest", json={**body, **({"end": True} if i else {})})
        assert resp.status_code == 200
    wait_until(lambda: fake.calls_with("HOLDME") >= 1, timeout=20, what="the task to call the provider")
    assert value(_scrape(url), "coachup_tasks_in_progress", task=ASSESS) == 1
    (child,) = [int(m.group(1)) for f in multiproc.files(folder) if (m := re.match(r"gauge_livesum_(\d+)\.db", f))]
    # When that child is killed with SIGKILL (it never runs its own shutdown hooks)
    os.kill(child, signal.SIGKILL)
    fake.release.set()
    # Then the task is redelivered and finishes (late ack + reject on worker lost) ...
    wait_until(
        lambda: value(_scrape(url), "coachup_tasks_total", task=ASSESS, status="succeeded") == 1,
        timeout=60,
        interval=0.2,
        what="the redelivered task to succeed",
    )
    # ... and the dead child's live gauge is swept at scrape: nothing is left in progress
    text = _scrape(url)
    assert value(text, "coachup_tasks_in_progress", task=ASSESS) == 0
    assert f"gauge_livesum_{child}.db" not in multiproc.files(folder)
    assert value(text, "coachup_tasks_total", task=ASSESS, status="started") == 2


def test_failure_reported_twice_for_one_task_is_counted_once(offline_settings):
    # Given the signal receivers of an app (Celery's hard time limit sends task_failure twice per task id)
    from billiard.exceptions import TimeLimitExceeded
    from celery import signals

    from workers import create_celery
    from workers.metrics_host import metrics_for

    app = create_celery(offline_settings)
    task = app.tasks[ASSESS]
    # When task_failure arrives twice for the same task id, and once for another
    for task_id in ("t-hard-limit", "t-hard-limit", "t-other"):
        signals.task_failure.send(sender=task, task_id=task_id, exception=TimeLimitExceeded(25.0))
    # Then each task id is one failure
    metrics = metrics_for(app)
    assert metrics.tasks_total.labels(ASSESS, "unknown", "failed")._value.get() == 2
    assert metrics.assessments_jobs_total.labels("failure")._value.get() == 2


def test_children_that_exit_cleanly_mark_themselves_dead(held):
    worker, _fake, _url, _client, folder = held
    # Given pool children that ran tasks (their live-gauge files exist)
    assert any(f.startswith("gauge_livesum_") for f in multiproc.files(folder))
    # When the worker shuts down warmly (each child runs worker_process_shutdown)
    worker.stop()
    # Then no child left a live gauge behind, with no scrape needed to sweep it
    assert not [f for f in multiproc.files(folder) if f.startswith("gauge_livesum_")]


def _raw_counts(folder) -> dict:
    """Every sample prometheus_client's own merge makes of the files compaction may fold (no sweep, no
    compaction). The live gauges' files (`gauge_live*`) are left out: the scrape's sweep deletes those of
    dead pids by design (test_sigkilled_child_leaves_no_in_progress_gauge), so a series whose only file
    was a dead child's vanishes, and compaction never touches them."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    from tests.observability.promtext import samples

    files = [str(folder / name) for name in multiproc.files(folder) if not name.startswith("gauge_live")]

    class Merged:
        def collect(self):
            return MultiProcessCollector.merge(files, accumulate=True)

    registry = CollectorRegistry()
    registry.register(Merged())
    return {(n, tuple(sorted(labels.items()))): v for n, labels, v in samples(generate_latest(registry).decode())}


def test_recycled_children_are_compacted_and_every_task_still_counts(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    from coachup.settings import load_settings
    from workers import create_celery

    # Given a worker whose pool children are replaced every 2 tasks (each leaves its metric files behind)
    port = free_port()
    env = {
        "COACHUP_ENV": "test",
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_TEST_TASKS": "1",
        "COACHUP_HASH_SECRET": "test-hash-secret-7f3a",
        "COACHUP_WORKER_METRICS_PORT": str(port),
        "COACHUP_WORKER_METRICS_HOST": "127.0.0.1",
    }
    settings = load_settings(env)
    folder = settings.metrics_root / f"worker-{port}"
    broker = EmbeddedBrokerServer(settings)  # the embedded broker's server, as `make run` starts it
    worker = WorkerProcess(
        env, tmp_path / "worker.log", name="recycle", queues="assessments", extra=["--max-tasks-per-child", "2"]
    ).wait_ready()
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        app = create_celery(settings)
        # When 12 tasks run
        for i in range(12):
            app.send_task("testing.flaky", args=[f"k{i}", 1])
        succeeded = (
            "coachup_tasks_total",
            (("queue", "assessments"), ("status", "succeeded"), ("task", "testing.flaky")),
        )
        # (read without the project's collector, which would already compact)
        wait_until(lambda: _raw_counts(folder).get(succeeded) == 12, timeout=60, interval=0.2, what="12 tasks counted")
        wait_until(lambda: len(set(pool_children(worker.proc.pid))) == 2, timeout=10, what="a full pool")
        before = _raw_counts(folder)
        assert len([n for n in multiproc.files(folder) if n.startswith("counter_")]) > 3  # dead children's
        # Then a scrape folds the dead children's files into one archive per type ...
        live = {worker.proc.pid, *pool_children(worker.proc.pid)}
        text = _scrape(url)
        names = multiproc.files(folder)
        # (a child may be replaced while the scrape runs: alive just before or just after, it keeps its files)
        live |= {worker.proc.pid, *pool_children(worker.proc.pid)}
        assert {"counter_archive.db", "histogram_archive.db", "gauge_mostrecent_archive.db"} <= set(names)
        per_pid = {
            int(m.group(2)) for n in names if (m := re.match(r"(counter|histogram|gauge_mostrecent)_(\d+)\.db$", n))
        }
        assert per_pid <= live, f"files of dead processes left: {sorted(per_pid - live)}"
        # ... and every count is what it was before, scrape after scrape
        assert _raw_counts(folder) == pytest.approx(before)  # sums in another order: float rounding only
        assert value(text, "coachup_tasks_total", task="testing.flaky", status="succeeded") == 12
        assert value(_scrape(url), "coachup_tasks_total", task="testing.flaky", status="succeeded") == 12
    finally:
        worker.stop()
        broker.close()


def _take_the_lock_exclusively(path: str) -> None:
    import fcntl

    with multiproc._locked(path, fcntl.LOCK_EX):
        pass


def test_a_child_forked_during_a_scrape_does_not_keep_the_directory_locked(tmp_path):
    # A pool child forked while a scrape holds the metrics directory's lock lives on for many tasks
    import fcntl
    import multiprocessing as mp
    import time

    ctx = mp.get_context("fork")
    with multiproc._locked(str(tmp_path), fcntl.LOCK_SH):
        child = ctx.Process(target=time.sleep, args=(60,))
        child.start()
    try:
        # the next scrape, in another process, takes the lock at once: the child holds nothing
        taker = ctx.Process(target=_take_the_lock_exclusively, args=(str(tmp_path),))
        taker.start()
        taker.join(timeout=10)
        assert taker.exitcode == 0, "the lock stayed held by the forked child"
    finally:
        child.kill()
        if taker.is_alive():
            taker.kill()
