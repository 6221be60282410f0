"""The assessment task itself, run in-process against a real store: idempotency and the persistence callback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from coachup.settings import load_settings
from tests.conftest import TEST_HASH_SECRET


def _celery(tmp_path, store_url, **env):
    from workers import create_celery

    settings = load_settings(
        {
            "COACHUP_DATA_DIR": str(tmp_path),
            "COACHUP_DATABASE_URL": store_url,
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "ASSESSMENTS_BACKOFF_BASE_MS": "10",
            **env,
        }
    )
    return create_celery(settings)


def _closed_group_with_job(app) -> str:
    store = app.coachup.store
    for i, text in enumerate(
        ["I shipped the release on time and the customers were happy with it.", "Next I will fix the flaky tests."]
    ):
        store.ingest_turn(
            session_id="sess",
            message_id=f"m{i}",
            role="user",
            content=text,
            ts=None,
            group_id="grp1",
            end_reason="explicit" if i else None,
            max_turns=12,
        )
    return store.create_job("assessment", session_id="sess", group_id="grp1")


def test_running_the_same_job_twice_stores_one_result(tmp_path, store_url):
    # Given a closed group and its job
    app = _celery(tmp_path, store_url)
    job_id = _closed_group_with_job(app)
    task = app.tasks["assessments.run"]

    # When the task runs twice (a redelivery after a lost ack looks exactly like this)
    first = task.apply(args=[job_id], task_id=job_id).get()
    second = task.apply(args=[job_id], task_id=job_id).get()

    # Then one result is stored and both runs report the same scores
    store = app.coachup.store
    assert store.count_assessments("sess", "grp1") == 1
    assert first["scores"] == second["scores"]
    assert store.get_job(job_id)["status"] == "done" and store.get_job(job_id)["attempts"] == 1


def test_unknown_job_fails_permanently_without_retry(tmp_path):
    app = _celery(tmp_path, f"sqlite:///{tmp_path / 's.sqlite'}")
    result = app.tasks["assessments.run"].apply(args=["4b7c0a4e-0000-4000-8000-000000000000"])
    assert result.failed() and type(result.result).__name__ == "NotFound"


class _Recorder(BaseHTTPRequestHandler):
    plan: list[int] = []
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).seen.append(
            {
                "auth": self.headers.get("authorization"),
                "rid": self.headers.get("x-request-id"),
                "body": json.loads(body),
            }
        )
        status = type(self).plan.pop(0) if type(self).plan else 200
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def persist_server():
    _Recorder.plan, _Recorder.seen = [503], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/persist", _Recorder
    server.shutdown()


def test_summary_is_posted_with_bearer_and_request_id_and_retried_on_5xx(tmp_path, persist_server):
    url, recorder = persist_server
    app = _celery(
        tmp_path,
        f"sqlite:///{tmp_path / 's.sqlite'}",
        PERSIST_ASSESSMENTS_URL=url,
        PERSIST_ASSESSMENTS_SECRET="persist-secret-1",
    )
    job_id = _closed_group_with_job(app)
    rid = "2f1d8c1e-5b4a-4c3d-8e2f-1a2b3c4d5e6f"

    result = app.tasks["assessments.run"].apply(args=[job_id], task_id=job_id, headers={"requestId": rid})

    assert result.successful(), result.result
    assert len(recorder.seen) == 2  # 503, then 200 on the retry
    assert all(s["auth"] == "Bearer persist-secret-1" and s["rid"] == rid for s in recorder.seen)
    assert recorder.seen[-1]["body"]["summary"]["scores"]
    assert app.coachup.store.count_assessments("sess", "grp1") == 1
