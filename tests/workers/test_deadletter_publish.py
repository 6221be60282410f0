"""The dead-letter path inside the task, in-process: what is published, and what happens when it cannot be."""

from __future__ import annotations

import pytest
from celery.exceptions import Reject
from kombu.exceptions import OperationalError


@pytest.fixture
def app(offline_settings):
    from workers import create_celery

    return create_celery(offline_settings.replace(test_tasks=True))


def _run_as_worker(task, key: str):
    """Call the task body the way a worker does: with a delivered request on the stack."""
    task.push_request(
        id=key,
        args=[key],
        kwargs={},
        retries=0,
        is_eager=False,
        called_directly=False,
        hostname="w1@host",
        delivery_info={"routing_key": "assessments", "redelivered": False},
        headers={"requestId": key, "x-user-id": "alice"},
    )
    try:
        return task(key)
    finally:
        task.pop_request()


def test_a_dying_job_is_published_to_the_deadletter_queue_with_references_only(app, monkeypatch):
    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, **kw: sent.append((name, kw)))
    key = "0b7c0a4e-0000-4000-8000-000000000001"

    with pytest.raises(Exception, match="provider said 400"):
        _run_as_worker(app.tasks["testing.permanent"], key)

    ((name, kw),) = sent
    letter = kw["args"][0]
    assert name == "deadletter.record" and kw["queue"] == "deadletter"
    assert letter["headers"] == {"requestId": key}  # the raw user id header is not carried
    assert "user:pw" not in letter["error_message"] and letter["worker"] == "w1@host"


def test_when_the_dead_letter_cannot_be_published_the_job_is_requeued(app, monkeypatch):
    def refuse(name, **kw):
        raise OperationalError("broker down")

    monkeypatch.setattr(app, "send_task", refuse)

    with pytest.raises(Reject) as caught:
        _run_as_worker(app.tasks["testing.permanent"], "0b7c0a4e-0000-4000-8000-000000000002")

    assert caught.value.requeue is True  # back on its queue: never nowhere
