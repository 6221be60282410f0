"""Flower, started by `coachup flower`, seen through headless Chromium (Debian's `chromium`).

Given a worker whose task events Flower turned on (they are off until someone watches: celeryconfig.py) and a
run that includes a failed task, when a browser logs into
Flower and opens the tasks page, then it finds the failed task and the worker; without credentials
Flower answers 401. Flower's tasks table is filled by JavaScript, so the test reads the DOM Chromium
rendered (`--dump-dom` after a virtual-time budget), not the HTML Flower sent.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.services import free_port, in_ci, port_open
from tests.support.wait import wait_until

USER, PASSWORD = "ops", "flower-pw-8c21"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        if in_ci():
            pytest.fail("chromium missing in CI (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed")
    return exe


@pytest.fixture
def flower(drill):
    port = free_port()
    env = {**os.environ, **drill.env, "FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}"}
    log = open(drill.data_dir / f"flower-{port}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "coachup.cli", "flower", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        wait_until(lambda: port_open("127.0.0.1", port), timeout=30, what="Flower to listen")
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


def _rendered_dom(chromium: str, url: str) -> str:
    profile = tempfile.mkdtemp(prefix="coachup-chromium-")
    try:
        out = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=8000", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=90,
        )
        return out.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_flower_shows_the_failed_task_and_the_worker_behind_basic_auth(drill, flower):
    chromium = _chromium()
    auth = (USER, PASSWORD)
    assert requests.get(f"http://{flower}/tasks", timeout=10).status_code == 401
    assert requests.get(f"http://{flower}/api/tasks", timeout=10).status_code == 401
    # Flower only records events it receives: wait until it sees the worker, then run the tasks
    wait_until(
        lambda: (
            drill.worker.proc.pid
            and "dlq-" in requests.get(f"http://{flower}/api/workers?refresh=1", auth=auth, timeout=10).text
        ),
        timeout=30,
        what="Flower to see the worker",
    )
    # task events are off until someone watches: Flower turns them on at run time (within 5 s of its start)
    drill.wait(drill.worker.task_events_on, timeout=30, what="Flower to turn the worker's task events on")
    failed = drill.send("testing.permanent")
    drill.letter(failed)
    wait_until(
        lambda: failed in requests.get(f"http://{flower}/api/tasks", auth=auth, timeout=10).text,
        timeout=30,
        what="Flower to record the failed task",
    )

    raw_html = requests.get(f"http://{flower}/tasks", auth=auth, timeout=10).text
    dom = _rendered_dom(chromium, f"http://{USER}:{PASSWORD}@{flower}/tasks")

    assert failed not in raw_html  # the table is filled by JavaScript: only a real browser shows it

    assert failed in dom, dom[-2000:]
    assert "FAILURE" in dom and "testing.permanent" in dom
    assert f"dlq-{drill.name}@" in dom  # the worker column
    workers_dom = _rendered_dom(chromium, f"http://{USER}:{PASSWORD}@{flower}/workers")
    assert f"dlq-{drill.name}@" in workers_dom
    task = requests.get(f"http://{flower}/api/task/info/{failed}", auth=auth, timeout=10).json()
    assert task["args"] == f"['{failed}']"  # references only: the id, nothing else
    # Flower's broker view: on Redis and, now that it is a real Redis, on the embedded broker too
    queues = requests.get(f"http://{flower}/api/queues/length", auth=auth, timeout=10).json()
    assert {"assessments", "deadletter"} <= {q["name"] for q in queues["active_queues"]}


@pytest.mark.drill  # a real beat sending sweeps every second; ~20 s per stack
def test_flower_does_not_list_the_schedulers_periodic_sweeps(drill, flower):
    # (the sweeps' task events are off and beat sends no task-sent: workers/base.py, workers/beat_lease.py)
    from tests.support.worker import BeatProcess

    auth = (USER, PASSWORD)
    periodic = {"interactions.sweep", "jobs.requeue"}

    def completed_sweeps() -> int:
        return sum(1 for e in drill.events("task_complete") if e.get("task") in periodic)

    wait_until(
        lambda: (
            f"dlq-{drill.name}@" in requests.get(f"http://{flower}/api/workers?refresh=1", auth=auth, timeout=10).text
        ),
        timeout=30,
        what="Flower to see the worker",
    )
    drill.wait(drill.worker.task_events_on, timeout=30, what="Flower to turn the worker's task events on")
    before = completed_sweeps()
    # Given the real scheduler sending both periodic sweeps every second, and the worker running them
    beat = BeatProcess({**drill.env, "COACHUP_IDLE_SWEEP_S": "1"}, drill.data_dir / "beat-flower.log").wait_ready()
    try:
        drill.wait(lambda: completed_sweeps() >= before + 4, timeout=60, what="the worker to run four sweeps")
    finally:
        beat.stop(timeout=20)
    # When an ordinary job runs after them and Flower has recorded it
    key = str(uuid.uuid4())
    drill.fix(key)
    drill.send("testing.fixable", key)
    wait_until(
        lambda: key in requests.get(f"http://{flower}/api/tasks", auth=auth, timeout=10).text,
        timeout=30,
        what="Flower to record the job",
    )
    # Then Flower's task list (what its tasks page shows) has the job and none of the sweeps
    tasks = requests.get(f"http://{flower}/api/tasks", auth=auth, timeout=10).json()
    names = {task.get("name") for task in tasks.values()}
    assert "testing.fixable" in names
    assert not names & periodic, names
