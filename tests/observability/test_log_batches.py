"""Log lines are written in batches (coachup/logs.py, `BufferedLineHandler`), and none is lost at shutdown.

A worker writes its lines in batches of whole lines: when a batch reaches PIPE_BUF bytes, every 0.2 s, at once
for a warning, and when the process ends. Given a real worker (prefork, `-c 2`, a private Redis) that has just
run many tasks, when it is stopped with SIGTERM, to its main process alone (how Kubernetes and `coachup run`
stop it: a warm shutdown) or to its whole process group (a pool child then dies at once), then its log holds
the `task_start` and `task_complete` lines of every task.
"""

from __future__ import annotations

import logging
import os
import signal
import uuid

import pytest

from coachup.logs import BufferedLineHandler, flush_all, formatter
from tests.conftest import stack_env
from tests.support.services import PrivateRedis
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess

TASKS = 120


def _read_available(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1 << 20)
    except BlockingIOError:
        return b""


def test_batches_are_whole_lines_flushed_by_the_timer_and_at_once_for_a_warning():
    read_fd, write_fd = os.pipe()
    stream = os.fdopen(write_fd, "w")
    handler = BufferedLineHandler(stream)
    handler.setFormatter(formatter("worker", "test", "json", stream))
    logger = logging.getLogger(f"test-batches-{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for i in range(5):
            logger.info("batched", extra={"event": "batched", "i": i})
        got = bytearray()
        # the timer writes them without anyone asking
        wait_until(lambda: got.extend(_read_available(read_fd)) or got.count(b"\n") == 5, timeout=5, what="flush")
        lines = got.decode().splitlines()
        assert [line.count('"event":"batched"') for line in lines] == [1] * 5
        logger.warning("urgent", extra={"event": "urgent"})  # a warning is written at once, by the caller
        assert b'"event":"urgent"' in _read_available(read_fd)
        # a batch never splits a line and never exceeds PIPE_BUF unless one line does
        for i in range(100):  # about 20 KB: well inside the pipe's buffer, nobody reads meanwhile
            logger.info("bulk", extra={"event": "bulk", "pad": "x" * 40, "i": i})
        flush_all()
        data = b""
        while chunk := _read_available(read_fd):
            data += chunk
        assert [int(line.split(b'"i":')[1].rstrip(b"}")) for line in data.splitlines()] == list(range(100))
    finally:
        logger.removeHandler(handler)
        handler.close()
        stream.close()
        os.close(read_fd)


@pytest.mark.parametrize("target", ["main", "group"])
def test_a_stopped_worker_leaves_every_task_line_in_its_log(tmp_path, target):
    redis = PrivateRedis()
    env = stack_env(tmp_path, "redis", "sqlite", None, None, COACHUP_TEST_TASKS="1")
    env["COACHUP_BROKER_URL"] = redis.url
    worker = WorkerProcess(env, tmp_path / "worker.log", name=f"logs-{target}", concurrency=2).wait_ready()
    try:
        from coachup.settings import load_settings
        from workers import create_celery

        celery = create_celery(load_settings(env))
        keys = [str(uuid.uuid4()) for _ in range(TASKS)]
        fixed = tmp_path / "testing" / "fixed"
        fixed.mkdir(parents=True, exist_ok=True)
        for key in keys:
            (fixed / key).touch()  # `testing.fixable` succeeds and writes its effect
            celery.send_task("testing.fixable", args=[key], task_id=key, ignore_result=True)
        effects = tmp_path / "testing" / "effects"
        # the last effect is written inside the task, before its task_complete line: stop right then
        wait_until(lambda: effects.exists() and len(os.listdir(effects)) == TASKS, timeout=120, what="every task")
        if target == "main":
            os.kill(worker.proc.pid, signal.SIGTERM)  # a warm shutdown: the pool children end normally
        else:
            os.killpg(worker.proc.pid, signal.SIGTERM)  # the children get SIGTERM too and die at once
        worker.proc.wait(timeout=60)
    finally:
        worker.stop(timeout=30)
        redis.close()
    for event in ("task_start", "task_complete"):
        logged = {e.get("taskId") for e in worker.events(event)}
        missing = [key for key in keys if key not in logged]
        assert not missing, f"{len(missing)} {event} lines lost at shutdown:\n{worker.log_tail(30)}"


def test_the_direct_path_of_log_event_writes_the_line_the_standard_path_writes():
    # log_event skips the LogRecord when our handler is the only one: the line must not change
    import json

    from coachup import context
    from coachup.context import RequestContext

    fmt = formatter("worker", "test", "json")
    fields = {"task": "assessments.run", "queue": "assessments", "enqueueLatencyMs": 3, "attempt": 1}
    record = logging.LogRecord("coachup.worker", logging.INFO, __file__, 1, "task_start", None, None)
    for key, value in {**fields, "event": "task_start"}.items():
        setattr(record, key, value)
    with context.use(RequestContext(requestId="0b6f1e7c-8a43-4c1e-9d0e-1f2a3b4c5d6e").with_(taskId="t-1")):
        standard = json.loads(fmt.format(record))
        direct = json.loads(fmt.event_line(logging.INFO, {**fields, "event": "task_start"}))
    assert standard.pop("ts")[:10] == direct.pop("ts")[:10]
    assert list(direct.items()) == list(standard.items())
    assert direct["taskId"] == "t-1" and direct["level"] == "info" and "msg" not in direct
