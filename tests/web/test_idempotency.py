"""Issue 16, finding 5: `Idempotency-Key` makes a client's retry safe (same key, same answer, one job).

Given the in-process API on a private Redis broker, when a client sends an inline transcript to
`POST /assessments/run` while the broker is down, it is answered 202 at once (the job row is committed; the
outbox relay publishes it when the broker is back), and a retry with the same key replays that answer: one
group, one job, one message published. When it repeats a successful request with the same key it gets the first
answer again without a second message; and the speech routes replay the same way.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from coachup.settings import load_settings
from coachup.store.models import InteractionGroup, Job
from tests.conftest import TEST_HASH_SECRET
from tests.support.broker import waiting_envelopes
from tests.support.services import PrivateRedis
from tests.support.wait import wait_until

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
            "COACHUP_OUTBOX_RETRY_S": "0.2",
        }
    )
    from web import create_app

    app = create_app(settings, configure_logs=False)
    yield app, redis
    app.extensions["coachup"].store.engine.dispose()
    redis.close()


def _published(app, queue: str) -> int:
    return len(waiting_envelopes(app.extensions["coachup"].celery, [queue]))


def _published_settles_at(app, queue: str, n: int) -> None:
    """The relay put `n` messages on `queue`, and published exactly `n` in all (one per job, not per retry)."""
    registry = app.extensions["coachup_metrics"].registry

    def settled() -> bool:
        relayed = registry.get_sample_value("coachup_outbox_publishes_total", {"status": "ok"}) or 0
        return relayed == _total_jobs(app) and _published(app, queue) == n

    wait_until(settled, timeout=20, what=f"{n} message(s) on {queue}, one publish per job")


def _total_jobs(app) -> int:
    with app.extensions["coachup"].store.session() as s:
        return s.scalar(select(func.count()).select_from(Job))


def _count(app, model, **where) -> int:
    store = app.extensions["coachup"].store
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    with store.session() as s:
        return s.scalar(query)


def test_a_run_during_a_broker_outage_is_accepted_and_its_retry_with_the_same_key_is_one_job(api):
    app, redis = api
    client = app.test_client()
    headers = {"Idempotency-Key": "run-7c1f"}
    redis.stop()
    down = client.post("/assessments/run", json=RUN, headers=headers)
    assert down.status_code == 202, down.get_json()  # committed: it will run once the broker is back
    redis.start()
    retried = client.post("/assessments/run", json=RUN, headers=headers)
    again = client.post("/assessments/run", json=RUN, headers=headers)
    assert retried.status_code == 202 and again.status_code == 202
    assert retried.get_json() == down.get_json() == again.get_json()
    assert retried.headers.get("Idempotent-Replayed") == "true"
    # one group for the attempts, one queued job, one message: the work, not a row a constraint limits
    assert _count(app, InteractionGroup, session_id="s1") == 1
    assert _count(app, Job, kind="assessment") == 1
    _published_settles_at(app, "assessments", 1)


def test_without_a_key_each_inline_run_is_its_own_group(api):
    app, _ = api
    client = app.test_client()
    first = client.post("/assessments/run", json=RUN).get_json()
    second = client.post("/assessments/run", json=RUN).get_json()
    assert first["groupId"] != second["groupId"]
    _published_settles_at(app, "assessments", 2)


def test_the_speech_routes_replay_the_first_answer(api):
    app, _ = api
    client = app.test_client()
    body = {"text": "Hello there.", "sessionId": "s1", "wait": False}
    first = client.post("/api/v1/tts", json=body, headers={"Idempotency-Key": "tts-1"})
    second = client.post("/api/v1/tts", json=body, headers={"Idempotency-Key": "tts-1"})
    assert first.status_code == second.status_code and first.status_code < 300, first.get_data(as_text=True)
    assert first.get_json() == second.get_json() and second.headers.get("Idempotent-Replayed") == "true"
    _published_settles_at(app, "tts", 1)
    other = client.post("/api/v1/tts", json=body, headers={"Idempotency-Key": "tts-2"})
    assert other.get_json() != first.get_json()
    _published_settles_at(app, "tts", 2)


def test_a_bad_key_is_a_400(api):
    app, _ = api
    resp = app.test_client().post("/assessments/run", json=RUN, headers={"Idempotency-Key": "has space"})
    assert resp.status_code == 400 and resp.get_json()["error"]["type"] == "validation_error"
