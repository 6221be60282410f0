"""Request context at the edge: what reaches the task message headers (embedded broker, no worker needed)."""

from __future__ import annotations

import uuid

from celery import signals

from tests.support.wait import wait_until

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _publish_with(offline_settings, headers: dict) -> dict:
    from web import create_app

    app = create_app(offline_settings, configure_logs=False)
    client = app.test_client()
    captured: list[dict] = []

    def capture(sender=None, headers=None, **_kw):
        captured.append(dict(headers or {}))

    signals.before_task_publish.connect(capture, weak=False, dispatch_uid="test-capture")
    try:
        body = {"sessionId": "sess-raw-1", "messageId": "m1", "role": "user", "content": "Hi there.", "end": True}
        resp = client.post("/messages/ingest", json=body, headers=headers)
        assert resp.status_code == 200 and resp.get_json()["enqueued"] is True
        task_id = resp.get_json()["taskId"]
        # the outbox relay publishes the committed job right after the answer, with the request's stored context
        wait_until(lambda: [h for h in captured if h.get("id") == task_id], timeout=10, what="the relay's publish")
    finally:
        signals.before_task_publish.disconnect(dispatch_uid="test-capture")
    (message_headers,) = [h for h in captured if h.get("id") == task_id]
    return message_headers


def test_context_headers_reach_the_task_message_hashed_and_validated(offline_settings):
    rid = str(uuid.uuid4())
    headers = _publish_with(
        offline_settings,
        {
            "x-request-id": rid,
            "traceparent": TRACEPARENT,
            "x-user-id": "alice@example.com",
            "x-tracked-skill-id": "ts-raw",
            "x-provider": "openai",
            "x-model-id": "gpt-4o-mini",
            "x-unknown-thing": "dropped-at-the-edge",
        },
    )
    assert headers["requestId"] == rid and headers["traceparent"] == TRACEPARENT
    assert headers["userIdHash"].startswith("u:") and headers["trackedSkillIdHash"].startswith("ts:")
    assert headers["sessionIdHash"].startswith("s:") and headers["groupId"].startswith("g:")
    assert (headers["provider"], headers["modelId"]) == ("openai", "gpt-4o-mini")
    assert isinstance(headers["enqueuedAtMs"], int)
    flat = repr(headers)
    for raw in ("alice@example.com", "ts-raw", "sess-raw-1", "dropped-at-the-edge", "x-unknown-thing"):
        assert raw not in flat


def test_invalid_values_are_replaced_or_dropped(offline_settings):
    headers = _publish_with(
        offline_settings,
        {
            "x-request-id": "not a safe id",
            "traceparent": "00-bad",
            "x-provider": "open ai; drop table",
            "x-model-id": "x" * 200,
        },
    )
    assert headers["requestId"] != "not a safe id" and len(headers["requestId"]) == 36
    assert "traceparent" not in headers and "provider" not in headers and "modelId" not in headers


def test_a_base36_request_id_reaches_the_task_message_as_sent(offline_settings):
    headers = _publish_with(offline_settings, {"x-request-id": "k3j9x0q2ab"})
    assert headers["requestId"] == "k3j9x0q2ab"
