"""Issue 18 end to end, through the API and a real worker on every stack: farewell words in ordinary speech
and a greeting that wishes luck no longer end a group, and a group with no user speech is skipped, never a
failure or a dead letter.

Asserts on `enqueued`, `closeReason`, `groupId`/`turnCount`, job status and dead-letter counts, not on the
state words (which another branch renames).
"""

from __future__ import annotations

import uuid

from tests.support.wait import wait_until
from workers.brokers import broker_for


def _ingest(client, session_id: str, message_id: str, role: str, content: str, **extra) -> dict:
    body = {"sessionId": session_id, "messageId": message_id, "role": role, "content": content, **extra}
    resp = client.post("/messages/ingest", json=body)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _dead_letters(stack) -> int:
    return broker_for(stack.settings).dead_letters(stack.app().extensions["coachup"].store).depth()


def _finished_job(client, task_id: str) -> dict:
    def finished():
        job = client.get(f"/api/v1/jobs/{task_id}").get_json()
        return job if job.get("status") in ("done", "failed") else None

    return wait_until(finished, timeout=60, interval=0.1, what=f"job {task_id}")


def _skipped_total(stack) -> float:
    from coachup.metrics import multiproc

    total = 0.0
    for folder in stack.settings.metrics_root.glob("worker-*"):
        value = multiproc.collect_registry(folder).get_sample_value("coachup_assessments_skipped_total")
        total += value or 0.0
    return total


def test_farewell_words_inside_ordinary_speech_do_not_end_the_interaction(stack):
    # Given a conversation under way
    client = stack.app().test_client()
    sid = "e2e18-speech-" + uuid.uuid4().hex[:8]
    letters = _dead_letters(stack)
    first = _ingest(
        client, sid, "m1", "user", "We reviewed the hiring plan this morning with the whole leadership team."
    )
    # When the user tells a story full of farewell words
    story = "I said goodbye to two contractors and wished the new hire good luck, then we planned the sprint."
    mid = _ingest(client, sid, "m2", "user", story)
    # Then the interaction goes on: same group, nothing queued, no close reason
    assert mid["enqueued"] is False and "closeReason" not in mid
    assert (mid["groupId"], mid["turnCount"]) == (first["groupId"], 2)
    # And the coach's question and the user's real goodbye still end it, once
    ask = _ingest(client, sid, "m3", "assistant", "Good luck is not a strategy. How will you onboard the new hire?")
    assert ask["enqueued"] is False and "closeReason" not in ask and ask["groupId"] == first["groupId"]
    last = _ingest(client, sid, "m4", "user", "With a buddy and a checklist. Thanks, that's everything I needed. Bye!")
    assert last["enqueued"] is True and last["closeReason"] == "closing_cue" and last["groupId"] == first["groupId"]
    job = _finished_job(client, last["taskId"])
    assert job["status"] == "done", job
    summary = stack.app().extensions["coachup"].store.get_assessment(sid, first["groupId"])
    assert summary["status"] == "assessed" and summary["meta"]["messageCount"] == 4
    assert _dead_letters(stack) == letters


def test_a_greeting_that_wishes_luck_does_not_end_an_empty_group(stack):
    # Given a new session whose first turn is the assistant's greeting
    client = stack.app().test_client()
    sid = "e2e18-greet-" + uuid.uuid4().hex[:8]
    greeting = _ingest(client, sid, "m1", "assistant", "Welcome back! Good luck today.")
    # Then nothing ended and nothing was queued
    assert greeting["enqueued"] is False and "closeReason" not in greeting and greeting["turnCount"] == 1
    # And the user's answer joins the same group
    answer = _ingest(client, sid, "m2", "user", "Thanks! Today I want to practise the opening of my board update.")
    assert answer["enqueued"] is False and (answer["groupId"], answer["turnCount"]) == (greeting["groupId"], 2)


def test_a_group_with_no_user_speech_is_skipped_not_failed_or_dead_lettered(stack):
    # Given an interaction that ends (explicitly) before the user said anything
    client = stack.app().test_client()
    sid = "e2e18-empty-" + uuid.uuid4().hex[:8]
    letters, skipped = _dead_letters(stack), _skipped_total(stack)
    _ingest(client, sid, "m1", "assistant", "Welcome back! Good luck today.")
    ended = _ingest(client, sid, "m2", "assistant", "I will be here when you are ready.", end=True)
    assert ended["enqueued"] is True and ended["closeReason"] == "explicit"
    # When the worker runs its assessment
    job = _finished_job(client, ended["taskId"])
    # Then the job is done (no failure, no retry), the stored summary says skipped, and it was counted
    assert job["status"] == "done" and job["attempts"] == 1, job
    summary = stack.app().extensions["coachup"].store.get_assessment(sid, ended["groupId"])
    assert summary["status"] == "skipped" and summary["scores"] is None and summary["errors"] == []
    assert _dead_letters(stack) == letters
    wait_until(lambda: _skipped_total(stack) >= skipped + 1, timeout=10, what="the skipped-group counter")
