"""The run lease inside a worker (Celery's in-process test worker, Redis/PostgreSQL and embedded/SQLite).

Given a job row whose run lease another delivery holds, when its message is delivered, then the copy is deferred
(not run, not dropped, no retry spent) and runs once the lease has run out. Given a run that fails retryably,
then its retry finds the lease released at once (no deferral), and the job ends done with its lease free.
(The solo pool here runs the retry only after the failed call has returned and released its lease; the release
before the retry is published, in `CoachupTask.retry`, is for a prefork pool whose other child may take the
retry first.)
"""

from __future__ import annotations

import uuid

from coachup.store import runs


def _events(stack, name: str, key: str) -> list[dict]:
    return [e for e in stack.events(name) if e.get("taskId") == key]


def test_a_copy_that_finds_a_live_lease_is_deferred_then_runs_without_spending_a_retry(inproc):
    store = inproc.celery.coachup.store
    key = str(uuid.uuid4())
    store.create_job("tts", job_id=key, params={})
    # Given another delivery holding the job's run lease for 2 more seconds
    assert runs.claim(store, key, "another-delivery", lease_s=2).claimed
    _, until = runs.lease_of(store, key)
    # When the job's message is delivered
    inproc.send("testing.leased", key)
    # Then it is deferred (logged and not run past the claim), and runs once the lease has run out
    inproc.wait(lambda: inproc.effect(key), timeout=30, what="the deferred copy to run")
    deferred = _events(inproc, "duplicate_delivery", key)
    assert deferred and all(e["outcome"] == "deferred" and e["kind"] == "testing" for e in deferred), deferred
    runs_seen = inproc.runs(key)
    assert len(runs_seen) == len(deferred) + 1
    assert runs_seen[-1][0] >= until.timestamp() - 0.05  # never while the other lease was live
    assert {retries for _, retries in runs_seen} == {0}  # a deferral is not a retry
    assert store.get_job(key)["status"] == "done" and runs.lease_of(store, key) == (None, None)
    assert store.job_record(key).attempts == 2  # the other delivery's claim and this copy's, no more


def test_a_retry_finds_the_lease_released_and_a_done_job_ends_with_its_lease_free(inproc):
    store = inproc.celery.coachup.store
    key = str(uuid.uuid4())
    store.create_job("tts", job_id=key, params={})
    # When a run holding the lease fails retryably once
    inproc.celery.send_task(
        "testing.leased", args=[key, 1], task_id=key, ignore_result=True, headers={"requestId": key}
    )
    inproc.wait(lambda: inproc.effect(key), timeout=30, what="the retried run to finish")
    # Then the retry claimed at once (the failed run released its lease before publishing the retry)
    assert [r for _, r in inproc.runs(key)] == [0, 1]
    assert not _events(inproc, "duplicate_delivery", key)
    assert store.get_job(key)["status"] == "done" and runs.lease_of(store, key) == (None, None)
    # and a copy delivered after the job is done does nothing (no effect twice, no deferral)
    inproc.send("testing.leased", key)
    inproc.wait(lambda: _events(inproc, "duplicate_delivery", key), timeout=30, what="the late copy")
    assert [e["outcome"] for e in _events(inproc, "duplicate_delivery", key)] == ["done"]
    assert store.job_record(key).attempts == 2
