"""The ops API: admin credential, queue depths and dead-letter redrive, on the embedded broker and Redis.

No worker runs here, so a redriven message stays on its queue where the test can count it.
"""

from __future__ import annotations

import pytest

from coachup.settings import load_settings
from tests.conftest import TEST_HASH_SECRET
from tests.support.services import EmbeddedBrokerServer, PrivateRedis
from tests.test_redrive_core import _letter

TOKEN = "ops-token-5d1c"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=["embedded", "redis"])
def ops(request, tmp_path):
    env = {
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_ENV": "test",
        "COACHUP_ADMIN_TOKEN": TOKEN,
    }
    redis = PrivateRedis() if request.param == "redis" else None
    if redis is not None:
        env["COACHUP_BROKER_URL"] = redis.url
    server = EmbeddedBrokerServer(load_settings(env)) if redis is None else redis
    from web import create_app

    app = create_app(load_settings(env), configure_logs=False)
    yield app
    server.close()


def _source(app):
    from coachup.store.deadletters import StoreDeadLetters

    return StoreDeadLetters(app.extensions["coachup"].store)


def test_ops_routes_refuse_without_the_admin_token(ops):
    client = ops.test_client()
    for method, path in (
        ("get", "/api/v1/ops/queues"),
        ("get", "/api/v1/ops/deadletters"),
        ("post", "/api/v1/ops/deadletters/redrive"),
    ):
        missing = getattr(client, method)(path)
        wrong = getattr(client, method)(path, headers={"authorization": "Bearer nope"})
        assert (missing.status_code, missing.get_json()["error"]["type"]) == (401, "unauthenticated")
        assert (wrong.status_code, wrong.get_json()["error"]["type"]) == (403, "forbidden")


def test_ops_routes_are_off_when_no_token_is_configured(offline_settings):
    from web import create_app

    client = create_app(offline_settings, configure_logs=False).test_client()
    resp = client.get("/api/v1/ops/deadletters", headers=AUTH)
    assert (resp.status_code, resp.get_json()["error"]["type"]) == (403, "admin_unconfigured")


def test_list_and_redrive_put_the_messages_back_on_their_queue(ops):
    client = ops.test_client()
    source = _source(ops)
    for n in range(3):
        source.add(_letter(n))
    source.add(_letter(7, task="stt.transcribe"))

    listed = client.get("/api/v1/ops/deadletters?task=assessments.run&limit=2", headers=AUTH).get_json()
    assert listed["depth"] == 4 and [x["id"] for x in listed["items"]] == ["job-2.0", "job-1.0"]
    preview = client.post("/api/v1/ops/deadletters/redrive", json={"dryRun": True}, headers=AUTH).get_json()
    assert (preview["selected"], preview["redriven"]) == (4, 0)

    report = client.post("/api/v1/ops/deadletters/redrive", json={"task": "assessments.*"}, headers=AUTH)

    assert report.status_code == 200 and report.get_json()["redriven"] == 3
    queues = client.get("/api/v1/ops/queues", headers=AUTH).get_json()
    depths = {q["name"]: q["depth"] for q in queues["queues"]}
    assert depths["assessments"] == 3 and depths["deadletter"] == 0 and queues["deadLetters"]["depth"] == 1


def test_bad_input_answers_4xx(ops):
    client = ops.test_client()
    assert client.get("/api/v1/ops/deadletters?limit=0", headers=AUTH).status_code == 400
    assert client.get("/api/v1/ops/deadletters?limit=x", headers=AUTH).status_code == 400
    assert client.post("/api/v1/ops/deadletters/redrive", json={"limit": 5000}, headers=AUTH).status_code == 400
    assert client.post("/api/v1/ops/deadletters/redrive", json={"task": 3}, headers=AUTH).status_code == 400
    assert (
        client.post(
            "/api/v1/ops/deadletters/redrive", data="x", headers={**AUTH, "content-type": "text/plain"}
        ).status_code
        == 415
    )


def test_redrive_with_the_broker_down_answers_503_and_keeps_every_letter(tmp_path):
    redis = PrivateRedis()
    env = {
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_ENV": "test",
        "COACHUP_ADMIN_TOKEN": TOKEN,
        "COACHUP_BROKER_URL": redis.url,
    }
    from web import create_app

    app = create_app(load_settings(env), configure_logs=False)
    source = _source(app)
    source.add(_letter(1))
    redis.stop()
    try:
        resp = app.test_client().post("/api/v1/ops/deadletters/redrive", json={}, headers=AUTH)
        queues = app.test_client().get("/api/v1/ops/queues", headers=AUTH)
    finally:
        redis.close()
    assert (resp.status_code, resp.get_json()["error"]["type"]) == (503, "broker_unavailable")
    assert queues.status_code == 503
    assert source.get("job-1.0") is not None
