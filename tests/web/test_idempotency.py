"""Issue 16, finding 5: `Idempotency-Key` makes a client's retry safe (same key, same answer, one job).

Given the in-process API on a private Redis broker, when a client sends an inline transcript to
`POST /assessments/run` while the broker is down (503) and retries with the same key once it is back, then
one assessment message is published for one group; when it repeats a successful request with the same key it
gets the first answer again without a second message; and the speech routes replay the same way.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from coachup.settings import load_settings
from coachup.store.models import InteractionGroup, Job
from tests.conftest import TEST_HASH_SECRET
from tests.support.broker import waiting_envelopes
from tests.support.services import PrivateRedis

RUN = {
    "sessionId": "s1",
    "transcript": [
        {"messageId": "m1", "role": "user", "content": "I shipped the release on time and told the team why."},
        {"messageId": "m2", "role": "assistant", "content": "Nice work."},
    ],
}


@pytest.fixture
def api(tmp_path):
    redis = PrivateRedis()
    settings = load_settings(
        {
            "COACHUP_DATA_DIR": str(tmp_path),
            "COACHUP_BROKER_URL": redis.url,
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "COACHUP_ENV": "test",
            "SPEECH_WAIT_MS": "0",
        }
    )
    from web import create_app

    app = create_app(settings, configure_logs=False)
    yield app, redis
    app.extensions["coachup"].store.engine.dispose()
    redis.close()


def _published(app, queue: str) -> int:
    return len(waiting_envelopes(app.extensions["coachup"].celery, [queue]))


def _count(app, model, **where) -> int:
    store = app.extensions["coachup"].store
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    with store.session() as s:
        return s.scalar(query)


def test_a_retry_after_a_503_with_the_same_key_assesses_the_transcript_once(api):
    app, redis = api
    client = app.test_client()
    headers = {"Idempotency-Key": "run-7c1f"}
    redis.stop()
    down = client.post("/assessments/run", json=RUN, headers=headers)
    assert down.status_code == 503 and down.get_json()["error"]["type"] == "broker_unavailable"
    redis.start()
    retried = client.post("/assessments/run", json=RUN, headers=headers)
    again = client.post("/assessments/run", json=RUN, headers=headers)
    assert retried.status_code == 202 and again.status_code == 202
    assert again.get_json() == retried.get_json() and again.headers.get("Idempotent-Replayed") == "true"
    # one group for the two attempts, one queued job, one message: the work, not a row a constraint limits
    assert _count(app, InteractionGroup, session_id="s1") == 1
    assert _count(app, Job, kind="assessment") == 1
    assert _published(app, "assessments") == 1


def test_without_a_key_each_inline_run_is_its_own_group(api):
    app, _ = api
    client = app.test_client()
    first = client.post("/assessments/run", json=RUN).get_json()
    second = client.post("/assessments/run", json=RUN).get_json()
    assert first["groupId"] != second["groupId"] and _published(app, "assessments") == 2


def test_the_speech_routes_replay_the_first_answer(api):
    app, _ = api
    client = app.test_client()
    body = {"text": "Hello there.", "sessionId": "s1", "wait": False}
    first = client.post("/api/v1/tts", json=body, headers={"Idempotency-Key": "tts-1"})
    second = client.post("/api/v1/tts", json=body, headers={"Idempotency-Key": "tts-1"})
    assert first.status_code == second.status_code and first.status_code < 300, first.get_data(as_text=True)
    assert first.get_json() == second.get_json() and second.headers.get("Idempotent-Replayed") == "true"
    assert _published(app, "tts") == 1
    other = client.post("/api/v1/tts", json=body, headers={"Idempotency-Key": "tts-2"})
    assert other.get_json() != first.get_json() and _published(app, "tts") == 2


def test_a_bad_key_is_a_400(api):
    app, _ = api
    resp = app.test_client().post("/assessments/run", json=RUN, headers={"Idempotency-Key": "has space"})
    assert resp.status_code == 400 and resp.get_json()["error"]["type"] == "validation_error"
