"""The assessment job end to end, through the API and a real worker, on every broker/store combination.

Given a running stack (broker, store, worker subprocess), when turns are ingested and the group ends,
then the worker stores one summary of the documented shape that the API returns.
"""

from __future__ import annotations

import uuid
from datetime import UTC

from tests.support.wait import wait_until

CRISP = [
    "I ran the quarterly review on Monday.",
    "Revenue grew eight percent and churn fell to two percent.",
    "We hired three engineers for the platform team.",
    "Next quarter I will focus on onboarding. Thanks, that's all for today.",
]
RAMBLING = [
    "So, um, the review, like, it went okay I guess, um, and, uh, revenue was, you know, up, kind of, like, yeah.",
    "And, uh, churn, like, went down, I think, um, basically, um, basically it went down, you know, kind of.",
    "Um, so, like, we, uh, we hired, like, some, uh, some engineers, I guess, you know, like, three or so, um.",
    "And, um, next, like, next quarter, uh, I guess we will, like, sort of, you know, focus on, um, stuff, yeah.",
]
CATEGORIES = ("correctness", "clarity", "conciseness", "fluency")


def _ingest_group(client, session_id: str, turns: list[str], *, end_last: bool = True) -> dict:
    body = None
    for i, text in enumerate(turns):
        payload = {
            "sessionId": session_id,
            "messageId": f"m{i}",
            "role": "user",
            "content": text,
            "ts": f"2026-11-22T10:00:{i * 7:02d}Z",
        }
        if end_last and i == len(turns) - 1:
            payload["end"] = True
        resp = client.post("/messages/ingest", json=payload)
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
    return body


def _wait_done(client, session_id: str, group_id: str | None = None, timeout: float = 60) -> dict:
    url = f"/assessments/{session_id}" + (f"?groupId={group_id}" if group_id else "")

    def done():
        resp = client.get(url)
        body = resp.get_json()
        assert body.get("status") != "failed", body
        return body if body.get("status") == "done" else None

    return wait_until(done, timeout=timeout, interval=0.1, what=f"assessment of {session_id}")


def test_ingest_end_and_assess_returns_documented_summary(stack):
    # Given a fresh session on the running stack
    client = stack.app().test_client()
    session_id = "sess-" + uuid.uuid4().hex[:8]

    # When four turns are ingested and the last says end:true
    last = _ingest_group(client, session_id, CRISP)

    # Then the group closed, an assessment was queued, and it finishes with the documented shape
    assert last["state"] == "idle" and last["turnCount"] == 4 and last["enqueued"] is True
    body = _wait_done(client, session_id)
    assert body["sessionId"] == session_id and body["latestGroupId"] == last["groupId"]
    summary = body["summary"]
    assert set(summary) >= {
        "rubricVersion",
        "scores",
        "skillAssessments",
        "highlights",
        "recommendations",
        "categories",
        "meta",
        "errors",
    }
    assert set(summary["scores"]) == set(CATEGORIES)
    for value in summary["scores"].values():
        assert 0.0 <= value <= 1.0 and round(value, 3) == value
    assert len(summary["highlights"]) <= 3 and len(summary["recommendations"]) <= 3
    assert summary["skillAssessments"], summary
    for skill in summary["skillAssessments"]:
        assert set(skill) >= {"skillId", "rubricHash", "level", "scores", "metCriteria", "unmetCriteria", "feedback"}
    meta = summary["meta"]
    assert meta["provider"] == "heuristic" and meta["messageCount"] == 4
    assert meta["skillsCount"] == len(summary["skillAssessments"])
    assert meta["tokensIn"] == 0 and meta["costUsd"] == 0
    assert meta["durationMs"] == 21_000  # from the turns' ts: 10:00:00 .. 10:00:21
    assert meta["slice"] == {"start_index": 0, "end_index": 3}
    assert summary["errors"] == []

    # and the job is visible by its task id
    job = client.get(f"/api/v1/jobs/{last['taskId']}").get_json()
    assert job["status"] == "done" and job["kind"] == "assessment"


def test_rambling_transcript_scores_lower_than_crisp_one(stack):
    client = stack.app().test_client()
    crisp_sid, rambling_sid = "crisp-" + uuid.uuid4().hex[:6], "ramble-" + uuid.uuid4().hex[:6]
    _ingest_group(client, crisp_sid, CRISP)
    _ingest_group(client, rambling_sid, RAMBLING)

    crisp = _wait_done(client, crisp_sid)["summary"]["scores"]
    rambling = _wait_done(client, rambling_sid)["summary"]["scores"]

    assert rambling["fluency"] < crisp["fluency"] - 0.2
    assert rambling["conciseness"] < crisp["conciseness"]
    assert rambling["clarity"] < crisp["clarity"]


def test_closing_cue_ends_the_group_without_end_flag(stack):
    client = stack.app().test_client()
    session_id = "cue-" + uuid.uuid4().hex[:8]
    first = client.post(
        "/messages/ingest",
        json={
            "sessionId": session_id,
            "messageId": "a",
            "role": "user",
            "content": "I practised my pitch twice this morning.",
        },
    ).get_json()
    assert first["state"] == "active" and first["enqueued"] is False
    second = client.post(
        "/messages/ingest",
        json={"sessionId": session_id, "messageId": "b", "role": "user", "content": "Thanks for the help, talk soon!"},
    ).get_json()
    assert second["state"] == "idle" and second["closeReason"] == "closing_cue" and second["enqueued"]
    assert _wait_done(client, session_id)["summary"]["meta"]["messageCount"] == 2


def test_idle_group_is_closed_by_the_scheduled_sweep(stack):
    # Given a group whose last turn is older than INTERACTION_IDLE_TIMEOUT_MS (1.5 s on the test stacks)
    client = stack.app().test_client()
    session_id = "idle-" + uuid.uuid4().hex[:8]
    opened = _ingest_group(client, session_id, CRISP[:2], end_last=False)
    assert opened["state"] == "active"
    store = client.application.extensions["coachup"].store
    wait_until(lambda: _idle_enough(store, session_id, opened["groupId"]), timeout=10, what="group to become idle")

    # When the scheduler's sweep task runs on the worker (beat sends exactly this message)
    stack_app = client.application.extensions["coachup"].celery
    stack_app.send_task("interactions.sweep")

    # Then the group is closed as idle and assessed
    body = _wait_done(client, session_id, opened["groupId"])
    assert store.group_info(session_id, opened["groupId"])["closeReason"] == "idle"
    assert body["summary"]["meta"]["messageCount"] == 2


def _idle_enough(store, session_id, group_id) -> bool:
    from datetime import datetime

    from sqlalchemy import select

    from coachup.store.models import InteractionGroup

    with store.session() as s:
        last = s.scalar(
            select(InteractionGroup.last_turn_at).where(
                InteractionGroup.session_id == session_id, InteractionGroup.group_id == group_id
            )
        )
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return (datetime.now(UTC) - last).total_seconds() > 1.6


def test_run_with_inline_transcript_and_tracked_skills(stack):
    client = stack.app().test_client()
    session_id = "inline-" + uuid.uuid4().hex[:8]
    resp = client.post(
        "/assessments/run",
        json={
            "sessionId": session_id,
            "trackedSkills": ["conciseness"],
            "transcript": [{"role": "user", "content": t} for t in CRISP[:3]],
        },
    )
    assert resp.status_code == 202, resp.get_json()
    accepted = resp.get_json()
    assert accepted["status"] == "accepted" and accepted["taskId"] and accepted["groupId"]
    summary = _wait_done(client, session_id, accepted["groupId"])["summary"]
    assert [s["skillId"] for s in summary["skillAssessments"]] == ["conciseness"]


def test_request_id_travels_from_api_into_worker_log_lines(stack):
    client = stack.app().test_client()
    session_id = "rid-" + uuid.uuid4().hex[:8]
    request_id = str(uuid.uuid4())
    resp = client.post(
        "/assessments/run",
        json={"sessionId": session_id, "transcript": [{"role": "user", "content": CRISP[0]}]},
        headers={"x-request-id": request_id},
    )
    assert resp.headers["x-request-id"] == request_id
    _wait_done(client, session_id)

    def lines():
        found = [e for e in stack.worker.events() if e.get("requestId") == request_id]
        names = {e["event"] for e in found}
        return found if {"assessments_dequeue", "assessments_job_complete"} <= names else None

    found = wait_until(lines, timeout=10, what="worker lines with the request id")
    assert all(e["service"] == "worker" for e in found)
    assert all(session_id not in str(e) for e in stack.worker.events())
