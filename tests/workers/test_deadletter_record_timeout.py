"""A `deadletter.record` killed at its hard time limit puts its letter back instead of losing it."""

from __future__ import annotations

import json

from celery.exceptions import TimeLimitExceeded

from coachup.deadletters import DeadLetter
from coachup.settings import load_settings


def test_record_task_killed_at_its_time_limit_republishes_the_same_letter(tmp_path):
    # Given the dead-letter record task on the embedded broker
    from workers import create_celery
    from workers.deadletter import RECORD_TASK, dead_letter_hard_timeout

    app = create_celery(load_settings({"COACHUP_DATA_DIR": str(tmp_path)}))
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
    dead_letter_hard_timeout(task, TimeLimitExceeded(30), "record-task-id", [letter.to_dict()], {})

    # Then the same letter is on the deadletter queue again, as a record message
    messages = list((tmp_path / "broker").glob("*.msg"))
    assert len(messages) == 1
    envelope = json.loads(messages[0].read_text())
    assert envelope["headers"]["task"] == RECORD_TASK
    assert envelope["properties"]["delivery_info"]["routing_key"] == "deadletter"
