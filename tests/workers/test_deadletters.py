"""Retries and dead letters, on Redis and on the embedded broker.

Given a worker with the test-only tasks, when a task is flaky, fails permanently or fails retryably (Celery's
in-process test worker: `inproc`), or kills its own worker child or outlives its hard time limit (a real
prefork worker: `drill`), then it succeeds on attempt 3 or lands in the dead-letter queue after the right
number of attempts, with references only.
"""

from __future__ import annotations

import itertools
import json

import pytest

from tests.support.wait import wait_until


def _events(stack, name: str, key: str) -> list[dict]:
    return [e for e in stack.events(name) if e.get("requestId") == key]


def test_flaky_task_succeeds_on_attempt_3_with_growing_gaps(inproc):
    key = inproc.send("testing.flaky")

    inproc.wait(lambda: inproc.effect(key), timeout=30, what="flaky task to succeed")

    runs = inproc.runs(key)
    assert [r for _, r in runs] == [0, 1, 2]  # 3 attempts
    retries = wait_until(
        lambda: len(_events(inproc, "task_retry", key)) == 2 and _events(inproc, "task_retry", key),
        timeout=10,
        what="two retry events",
    )
    # the backoffs the worker chose and logged grow: base 50 ms, then 100 ms (+ up to 25% jitter)
    assert [e["attempt"] for e in retries] == [1, 2]
    backoffs = [e["backoff_ms"] for e in retries]
    assert 50 <= backoffs[0] <= 62 and 100 <= backoffs[1] <= 125, backoffs
    # and each was honoured: a run starts no sooner than its backoff after the previous run started (it began
    # before the failure that scheduled the retry). Only a lower bound is exact: a loaded machine may start a
    # retry late, so the upper bound is generous and the gaps themselves are not compared with each other.
    gaps_ms = [(b[0] - a[0]) * 1000 for a, b in itertools.pairwise(runs)]
    assert all(gap >= backoff - 5 for gap, backoff in zip(gaps_ms, backoffs, strict=True)), (gaps_ms, backoffs)
    assert all(gap < backoff + 5000 for gap, backoff in zip(gaps_ms, backoffs, strict=True)), (gaps_ms, backoffs)
    assert inproc.source.get(f"{key}.0") is None


def test_permanent_failure_is_dead_lettered_after_one_attempt(inproc):
    key = inproc.send("testing.permanent", traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")

    letter = inproc.letter(key)

    assert len(inproc.runs(key)) == 1
    assert (letter.task, letter.reason, letter.error_type, letter.attempts) == (
        "testing.permanent",
        "permanent",
        "upstream_rejected",
        1,
    )
    assert letter.queue == "assessments" and letter.args == [key] and letter.worker.startswith("dlq-")
    assert letter.headers["traceparent"].startswith("00-0af7") and letter.headers["requestId"]
    assert "pw@" not in letter.error_message and "sk-abcdefghijkl" not in letter.error_message
    event = wait_until(lambda: _events(inproc, "task_dead_lettered", key), timeout=10, what="dead-letter event")
    assert event[0]["reason"] == "permanent" and letter.headers["requestId"] == key


def test_retryable_failure_is_dead_lettered_after_1_plus_3_attempts(inproc):
    key = inproc.send("testing.retryable")

    letter = inproc.letter(key)

    assert len(inproc.runs(key)) == 4
    assert (letter.reason, letter.error_type, letter.attempts) == ("retries_exhausted", "upstream_unavailable", 4)
    assert letter.first_failure_at < letter.last_failure_at


@pytest.mark.drill  # a few seconds per kill (Celery's worker_lost_wait)
def test_worker_killed_by_its_task_is_dead_lettered_after_the_redelivery_cap(drill):
    key = drill.send("testing.suicide")

    letter = drill.letter(key, timeout=60)

    assert len(drill.runs(key)) == 3  # first delivery + 2 redeliveries (COACHUP_MAX_REDELIVERIES=2)
    assert (letter.reason, letter.error_type) == ("redeliveries", "redeliveries_exceeded")
    assert json.dumps(letter.to_dict())  # the record is plain JSON


def test_task_killed_at_its_hard_time_limit_is_dead_lettered(drill):
    key = drill.send("testing.hang")

    letter = drill.letter(key)

    assert (letter.reason, letter.error_type, letter.args) == ("time_limit", "TimeLimitExceeded", [key])
    assert letter.queue == "assessments" and len(drill.runs(key)) == 1
