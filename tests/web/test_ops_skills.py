"""An operator keeps our skills catalogue in step with the front end's (admin token): add or update a skill
from criteria the assessor can judge, sync the whole list, and the new skill is trackable at once."""

from __future__ import annotations

import pytest

ADMIN = {"x-admin-token": "ops-token-1"}
PITCH = {
    "title": "Pitch clarity",
    "category": "communication",
    "description": "Makes a short, concrete pitch.",
    "criteria": ["short_sentences", "concrete_details"],
}


@pytest.fixture
def client(offline_settings, caplog):
    from web import create_app

    caplog.set_level("INFO", logger="coachup.api")  # the routes' log lines are built, as in production
    return create_app(offline_settings.replace(admin_token="ops-token-1"), configure_logs=False).test_client()


def test_the_routes_need_the_admin_token(client, offline_settings):
    assert client.get("/api/v1/ops/skills/criteria").status_code == 401
    assert client.put("/api/v1/ops/skills/x", json=PITCH, headers={"x-admin-token": "wrong"}).status_code == 403
    from web import create_app

    closed = create_app(offline_settings, configure_logs=False).test_client()
    resp = closed.post("/api/v1/ops/skills/sync", json={"skills": [PITCH]}, headers=ADMIN)
    assert resp.status_code == 403 and resp.get_json()["error"]["type"] == "admin_unconfigured"


def test_an_operator_adds_a_skill_and_a_session_can_track_it(client):
    criteria = {c["id"] for c in client.get("/api/v1/ops/skills/criteria", headers=ADMIN).get_json()["criteria"]}
    assert set(PITCH["criteria"]) <= criteria
    before = client.post(
        "/messages/ingest",
        json={
            "sessionId": "s",
            "messageId": "m0",
            "role": "user",
            "content": "Hi.",
            "trackedSkills": ["pitch_clarity"],
        },
    )
    assert before.status_code == 400

    created = client.put("/api/v1/ops/skills/pitch_clarity", json=PITCH, headers=ADMIN)
    assert created.status_code == 201 and created.get_json()["outcome"] == "created"
    assert (
        client.put("/api/v1/ops/skills/pitch_clarity", json=PITCH, headers=ADMIN).get_json()["outcome"] == "unchanged"
    )
    assert client.get("/api/v1/skills?id=pitch_clarity").get_json()["skill"]["title"] == "Pitch clarity"
    after = client.post(
        "/messages/ingest",
        json={
            "sessionId": "s",
            "messageId": "m1",
            "role": "user",
            "content": "Hi.",
            "trackedSkills": ["pitch_clarity"],
        },
    )
    assert after.status_code == 200


@pytest.mark.parametrize(
    "body,needle",
    [
        ({**PITCH, "criteria": ["invented_criterion"]}, "invented_criterion"),
        ({**PITCH, "title": ""}, "title"),
        ({**PITCH, "id": "another_id"}, "differs"),
    ],
)
def test_a_bad_skill_is_a_400_that_says_why(client, body, needle):
    resp = client.put("/api/v1/ops/skills/pitch_clarity", json=body, headers=ADMIN)
    assert resp.status_code == 400 and needle in resp.get_json()["error"]["message"]
    assert client.get("/api/v1/skills?id=pitch_clarity").status_code == 404


def test_sync_is_all_or_nothing(client):
    skills = [{**PITCH, "id": "pitch_clarity"}, {**PITCH, "id": "broken", "criteria": ["nope"]}]
    resp = client.post("/api/v1/ops/skills/sync", json={"skills": skills}, headers=ADMIN)
    assert resp.status_code == 400 and "nope" in resp.get_json()["error"]["message"]
    assert client.get("/api/v1/skills?id=pitch_clarity").status_code == 404
    ok = client.post("/api/v1/ops/skills/sync", json={"skills": skills[:1]}, headers=ADMIN).get_json()
    assert ok["created"] == 1 and ok["ids"]["created"] == ["pitch_clarity"]
