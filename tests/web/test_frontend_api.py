"""The calls of the Coach Up front end, in-process (embedded broker, SQLite), with the assessment job run
in-process by its real task: what the front end sends and what it reads back."""

from __future__ import annotations

import pytest

from tests.support.wait import wait_until

CLOSING_REPLY = "Here is your plan for the next two weeks. Good luck!"
USER_TURNS = [
    "Can you plan my next two weeks? I want to practise my pitch.",
    "I present to the board on Friday and I tend to ramble when I am nervous.",
]


@pytest.fixture
def client(offline_settings):
    from web import create_app

    return create_app(offline_settings, configure_logs=False).test_client()


def _ingest(client, session_id, message_id, content, role="user", **extra):
    body = {"sessionId": session_id, "messageId": message_id, "role": role, "content": content, "ts": 1_764_000_000_000}
    resp = client.post("/messages/ingest", json={**body, **extra})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _interaction(client, session_id, **extra) -> dict:
    """Two user turns and the assistant's closing reply; the answer to the reply."""
    for i, text in enumerate(USER_TURNS):
        _ingest(client, session_id, f"u{i}x9", text, **(extra if i == 0 else {}))
    return _ingest(client, session_id, "a2x9", CLOSING_REPLY, role="assistant")


def _run_job(client, task_id: str) -> None:
    """What a worker does with the queued message (in-process, the real task)."""
    celery = client.application.extensions["coachup"].celery
    result = celery.tasks["assessments.run"].apply(args=[task_id], task_id=task_id)
    assert result.successful(), result.result


def test_ingest_answers_active_then_idle_with_the_pinned_fields(client):
    first = _ingest(client, "s1", "k3j9x0q2ab", USER_TURNS[0])
    assert (first["state"], first["turnCount"], first["enqueued"], first["deduped"]) == ("active", 1, False, False)
    again = _ingest(client, "s1", "k3j9x0q2ab", USER_TURNS[0])
    assert (again["deduped"], again["enqueued"], again["groupId"]) == (True, False, first["groupId"])
    reply = _ingest(client, "s1", "p0w8z1", CLOSING_REPLY, role="assistant")
    assert (reply["state"], reply["enqueued"], reply["groupId"]) == ("idle", True, first["groupId"])
    assert reply["turnCount"] == 2 and reply["closeReason"] == "closing_cue"


def test_an_assistant_greeting_with_a_closing_phrase_does_not_end_an_empty_interaction(client):
    greeting = _ingest(client, "s2", "g1", "Hi! Good luck with today's practice.", role="assistant")
    assert greeting["state"] == "active" and greeting["enqueued"] is False


def test_latest_group_id_names_a_group_only_with_its_result(client):
    reply = _interaction(client, "s3")
    queued = client.get("/assessments/s3").get_json()
    assert queued["latestGroupId"] is None and queued["summary"] is None
    assert (queued["pendingGroupId"], queued["pendingStatus"]) == (reply["groupId"], "queued")

    _run_job(client, reply["taskId"])
    done = client.get("/assessments/s3").get_json()
    assert done["latestGroupId"] == reply["groupId"] and done["status"] == "done" and done["summary"]

    # a new interaction starts: the last result stays where the chip looks for it
    nxt = _ingest(client, "s3", "u9", "Next, can we work on my opening line?")
    later = client.get("/assessments/s3").get_json()
    assert later["latestGroupId"] == reply["groupId"] and later["summary"] == done["summary"]
    assert (later["pendingGroupId"], later["pendingStatus"]) == (nxt["groupId"], "active")


def test_tracked_skills_are_remembered_assessed_and_filtered_by_the_skill_page(client):
    tracked = ["conciseness", {"skillId": "clarity_eloquence"}]
    reply = _interaction(client, "s4", trackedSkills=tracked)
    listed = client.get("/chat/tracked-skills?session_id=s4").get_json()
    assert listed["source"] == "session" and [s["id"] for s in listed["skills"]] == ["conciseness", "clarity_eloquence"]
    _run_job(client, reply["taskId"])

    everything = client.get("/assessments/s4").get_json()["summary"]["skillAssessments"]
    assert sorted(i["skill"]["id"] for i in everything) == ["clarity_eloquence", "conciseness"]
    page = client.get("/assessments/s4", headers={"X-Tracked-Skill-Id": "conciseness"}).get_json()
    (item,) = page["summary"]["skillAssessments"]
    assert item["skill"] == {"id": "conciseness", "name": "Conciseness", "category": "communication"}
    assert isinstance(item["level"], int) and 0 <= item["level"] <= 10
    assert item["metCriteria"] + item["unmetCriteria"] and all(
        " " in c for c in item["metCriteria"] + item["unmetCriteria"]
    )  # sentences, not snake_case ids
    assert isinstance(item["feedback"], list) and all(isinstance(f, str) for f in item["feedback"])
    none = client.get("/assessments/s4", headers={"X-Tracked-Skill-Id": "stutter_free"}).get_json()
    assert none["summary"]["skillAssessments"] == []


def test_an_unknown_tracked_skill_is_a_400_that_names_it_and_stores_nothing(client):
    resp = client.post(
        "/messages/ingest",
        json={
            "sessionId": "s5",
            "messageId": "m",
            "role": "user",
            "content": "Hi.",
            "trackedSkills": ["made_up_skill"],
        },
    )
    assert resp.status_code == 400 and resp.get_json()["error"]["type"] == "unknown_skill"
    assert "made_up_skill" in resp.get_json()["error"]["message"]
    assert client.get("/assessments/s5").status_code == 404
    run = client.post("/assessments/run", json={"sessionId": "s5", "trackedSkills": ["clarity_eloquence", "nope"]})
    assert run.status_code == 400 and "nope" in run.get_json()["error"]["message"]


def test_run_takes_the_session_id_from_the_query_string_alone(client):
    _ingest(client, "s6", "u1", USER_TURNS[0])
    resp = client.post("/assessments/run?sessionId=s6", headers={"content-type": "application/json"})
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()["groupId"] == client.get("/assessments/s6").get_json()["pendingGroupId"]


def test_a_new_group_id_ends_the_active_interaction_and_queues_its_assessment(client):
    first = _ingest(client, "s7", "u1", USER_TURNS[0])
    named = _ingest(client, "s7", "u2", USER_TURNS[1], groupId="grp_mine")
    assert (named["groupId"], named["state"], named["turnCount"]) == ("grp_mine", "active", 1)
    view = client.get(f"/assessments/s7?groupId={first['groupId']}").get_json()
    assert view["status"] == "queued" and view["taskId"]


def test_service_metrics_and_tracked_skills_defaults(client):
    reply = _interaction(client, "s8")
    # the closing turn's job is committed with it; the outbox relay puts its message on the broker right after
    metrics = wait_until(
        lambda: (m := client.get("/service-metrics").get_json())["queueDepth"] == 1 and m,
        timeout=10,
        what="the relay to publish the job",
    )
    assert set(metrics) == {"queueDepth", "workerConcurrency", "sessionCount", "resultsCount"}
    assert (metrics["queueDepth"], metrics["sessionCount"], metrics["resultsCount"]) == (1, 1, 0)
    _run_job(client, reply["taskId"])
    assert client.get("/service-metrics").get_json()["resultsCount"] == 1
    default = client.get("/chat/tracked-skills?session_id=nobody-yet").get_json()
    settings = client.application.extensions["coachup"].settings
    assert default["source"] == "default" and [s["id"] for s in default["skills"]] == list(settings.default_skills)
    missing = client.get("/chat/tracked-skills")
    assert missing.status_code == 400 and missing.get_json()["error"]["type"] == "validation_error"


def test_a_refused_run_leaves_no_session_behind(client):
    resp = client.post("/assessments/run", json={"sessionId": "ghost", "trackedSkills": ["clarity_eloquence"]})
    assert resp.status_code == 404
    assert client.get("/assessments/ghost").status_code == 404
    assert client.get("/chat/tracked-skills?session_id=ghost").get_json()["source"] == "default"
