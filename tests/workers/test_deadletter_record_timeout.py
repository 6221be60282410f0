"""A `deadletter.record` killed at its hard time limit puts its letter back instead of losing it."""

from __future__ import annotations

from celery.exceptions import TimeLimitExceeded

from coachup.deadletters import DeadLetter
from tests.support.broker import waiting_envelopes


def test_record_task_killed_at_its_time_limit_republishes_the_same_letter(offline_settings):
    # Given the dead-letter record task on the embedded broker
    from workers import create_celery
    from workers.deadletter import RECORD_TASK
    from workers.guard import on_hard_time_limit

    app = create_celery(offline_settings)
    task = app.tasks[RECORD_TASK]
    assert task.time_limit is not None  # a stuck store cannot hold a pool child forever
    letter = DeadLetter(
        id="job-1.0",
        task_id="job-1",
        task="assessments.run",
        queue="assessments",
        reason="permanent",
        error_type="ValidationFailed",
        error_message="bad",
        attempts=1,
        first_failure_at="2026-11-22T10:00:00.000Z",
        last_failure_at="2026-11-22T10:00:00.000Z",
        args=["job-1"],
        kwargs={},
    )

    # When the parent handles the hard time limit of that record task (before it acks the message)
    on_hard_time_limit(task, TimeLimitExceeded(30), "record-task-id", [letter.to_dict()], {})

    # Then the same letter is on the deadletter queue again, as a record message
    messages = waiting_envelopes(app)
    assert len(messages) == 1
    envelope = messages[0]
    assert envelope["headers"]["task"] == RECORD_TASK
    assert envelope["properties"]["delivery_info"]["routing_key"] == "deadletter"
