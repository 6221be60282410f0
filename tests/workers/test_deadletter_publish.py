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


def _letters(app):
    from coachup.store.deadletters import StoreDeadLetters

    return StoreDeadLetters(app.coachup.store)


def test_the_letter_is_in_the_store_ledger_before_its_message_is_published(app, monkeypatch):
    # issue 16 finding 3: a record message the broker loses must not take the letter with it
    seen = []
    monkeypatch.setattr(app, "send_task", lambda name, **kw: seen.append((_letters(app).pending(), kw["kwargs"])))

    with pytest.raises(Exception, match="provider said 400"):
        _run_as_worker(app.tasks["testing.permanent"], "0b7c0a4e-0000-4000-8000-000000000003")

    assert seen == [(1, {"ledgered": True})]  # the marker was committed when the message left


def test_when_the_broker_refuses_a_ledgered_letter_the_job_fails_and_the_ledger_keeps_it(app, monkeypatch):
    def refuse(name, **kw):
        raise OperationalError("broker down")

    monkeypatch.setattr(app, "send_task", refuse)
    key = "0b7c0a4e-0000-4000-8000-000000000002"

    with pytest.raises(Exception, match="provider said 400"):  # not Reject: the job is done with, as failed
        _run_as_worker(app.tasks["testing.permanent"], key)

    [letter] = _letters(app).unrecorded(0)
    assert letter.task_id == key and letter.reason == "permanent"  # the sweep publishes it once the broker is up


def test_when_neither_the_store_nor_the_broker_takes_the_letter_the_job_is_requeued(app, monkeypatch):
    from sqlalchemy.exc import OperationalError as StoreDown

    from coachup.store.deadletters import StoreDeadLetters

    def refuse(name, **kw):
        raise OperationalError("broker down")

    def store_down(self, letter):
        raise StoreDown("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(app, "send_task", refuse)
    monkeypatch.setattr(StoreDeadLetters, "ledger", store_down)

    with pytest.raises(Reject) as caught:
        _run_as_worker(app.tasks["testing.permanent"], "0b7c0a4e-0000-4000-8000-000000000004")

    assert caught.value.requeue is True  # back on its queue: never nowhere
