"""Which project files run during one assessment job's life: delivery, retry, dead letter, redrive.

    python -m tests.support.job_life      # from a checkout; prints the files and their count

An in-process worker (Celery's test worker) on a private Redis takes an assessment whose assessor fails
retryably (ASSESSMENTS_MAX_RETRIES=1): it retries, dies into the dead-letter queue, is recorded, is redriven
with `coachup dlq redrive`, and succeeds. Every project file with a Python function call in that window
(the API's, the worker thread's, the CLI's) is counted. A measurement tool, not a test.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = ("coachup/assessment", "coachup/store", "coachup/speech")


def _wait(probe, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def main() -> int:
    from celery.contrib.testing.worker import start_worker
    from click.testing import CliRunner

    import workers.tasks.assessments as task_module
    from coachup.cli import main as cli
    from coachup.errors import UpstreamUnavailable
    from coachup.settings import load_settings
    from coachup.store.deadletters import StoreDeadLetters
    from tests.support.services import free_port
    from web import create_app
    from workers.brokers.embedded import EmbeddedRedis

    tmp = Path(tempfile.mkdtemp())
    port = free_port()
    server = EmbeddedRedis(tmp / "redis", port=port, appendonly=False).start()
    env = {
        "COACHUP_DATA_DIR": str(tmp),
        "COACHUP_BROKER_URL": f"redis://127.0.0.1:{port}/0",
        "COACHUP_HASH_SECRET": "x",
        "COACHUP_ENV": "test",
        "ASSESSMENTS_MAX_RETRIES": "1",
        "ASSESSMENTS_BACKOFF_BASE_MS": "10",
        "COACHUP_WORKER_METRICS_PORT": "0",
    }
    os.environ.update(env)
    app = create_app(load_settings(env), configure_logs=False)
    celery, store = app.extensions["coachup"].celery, app.extensions["coachup"].store
    real = task_module.assess_group

    def failing(*_a, **_k):
        raise UpstreamUnavailable("provider answered 503")

    seen: set[str] = set()

    def profile(frame, event, _arg):
        path = frame.f_code.co_filename
        if event == "call" and path.startswith(str(ROOT)) and "/tests/" not in path and "/.venv/" not in path:
            seen.add(os.path.relpath(path, ROOT))

    client = app.test_client()
    threading.setprofile(profile)  # before the worker thread starts: it inherits the profiler
    sys.setprofile(profile)
    try:
        with start_worker(celery, perform_ping_check=False, loglevel="WARNING"):
            task_module.assess_group = failing
            session = "life-" + uuid.uuid4().hex[:6]
            body = {"sessionId": session, "messageId": "m1", "role": "user", "end": True}
            body["content"] = "I led the launch review and we shipped on Friday."
            assert client.post("/messages/ingest", json=body).status_code == 200
            _wait(lambda: StoreDeadLetters(store).depth() == 1)
            task_module.assess_group = real
            assert CliRunner().invoke(cli, ["dlq", "redrive"], env=env).exit_code == 0
            _wait(lambda: client.get(f"/assessments/{session}").get_json().get("status") == "done")
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
        server.stop()
    files = sorted(seen)
    domain = [f for f in files if f.startswith(DOMAIN)]
    print("\n".join(files))
    print(f"TOTAL {len(files)} project files; {len(files) - len(domain)} outside the domain (assessment/store/speech)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
