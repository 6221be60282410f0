"""The outbox in the store (SQLite and PostgreSQL): a closing turn commits its job unpublished in its own
transaction, and relays claim, mark and release rows so that no two publish one row inside a lease."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from coachup.store import GroupIdle, create_store, outbox
from coachup.store.models import utcnow

JOB = {
    "request_id": "req-1",
    "context": {"requestId": "req-1", "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
}


@pytest.fixture
def store(store_url):
    s = create_store(store_url)
    yield s
    s.engine.dispose()


def _turn(store, message_id: str, *, group_id=None, end=None, session_id="s1"):
    return store.ingest_turn(
        session_id=session_id,
        message_id=message_id,
        role="user",
        content="I shipped it on time.",
        ts=None,
        group_id=group_id,
        end_reason=end,
        max_turns=12,
        assessment_job=JOB,
    )


def test_a_closing_turn_commits_its_job_unpublished_with_the_request_context(store):
    open_turn = _turn(store, "m1")
    assert open_turn.job_id is None and outbox.backlog(store)[0] == 0
    closing = _turn(store, "m2", end="explicit")
    assert closing.state == "idle" and closing.job_created and closing.job_id
    assert outbox.unpublished(store, closing.job_id)
    (row,) = outbox.claim(store, lease_s=60)
    assert (row.id, row.kind, row.request_id, row.context) == (closing.job_id, "assessment", "req-1", JOB["context"])
    assert row.params == {"trackedSkills": []}
    # the resent closing turn is deduped and writes no second job
    assert _turn(store, "m2", end="explicit").deduped and outbox.backlog(store)[0] == 1


def test_a_turn_refused_as_idle_writes_no_job(store):
    closing = _turn(store, "m1", end="explicit")
    with pytest.raises(GroupIdle):
        _turn(store, "m2", group_id=closing.group_id)
    assert outbox.backlog(store)[0] == 1


def test_a_new_group_id_queues_the_superseded_group_in_the_same_transaction(store):
    first = _turn(store, "m1")
    named = _turn(store, "m2", group_id="grp_next")
    assert named.superseded == first.group_id and named.superseded_job_id
    job = store.job_record(named.superseded_job_id)
    assert job is not None and (job.group_id, job.status) == (first.group_id, "queued")


def test_a_group_with_an_active_assessment_keeps_it(store):
    first = _turn(store, "m1")
    existing, created = store.create_assessment_job("s1", first.group_id, request_id="r0", params={})
    assert created
    closing = _turn(store, "m2", end="explicit")
    assert (closing.job_id, closing.job_created) == (existing, False)


def test_two_relays_never_claim_one_row_and_a_lease_expires(store):
    ids = [store.create_job("tts", params={}, context={"requestId": f"r{i}"}) for i in range(20)]
    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda _: outbox.claim(store, lease_s=60), range(4)))
    claimed = [row.id for batch in batches for row in batch]
    assert sorted(claimed) == sorted(ids)  # every row once, none twice
    assert outbox.claim(store, lease_s=60) == []  # all leased
    later = utcnow() + timedelta(seconds=61)
    assert sorted(r.id for r in outbox.claim(store, lease_s=60, now=later)) == sorted(ids)  # a dead relay's rows


def test_marked_rows_leave_the_outbox_and_released_rows_wait_for_their_retry_time(store):
    a = store.create_job("tts", params={})
    b = store.create_job("tts", params={})
    outbox.claim(store, lease_s=60)
    assert outbox.mark_published(store, a) and not outbox.mark_published(store, a)
    outbox.release(store, b, retry_at=utcnow() + timedelta(seconds=30))
    assert outbox.claim(store, lease_s=60) == [] and outbox.backlog(store)[0] == 1
    assert [r.id for r in outbox.claim(store, lease_s=60, now=utcnow() + timedelta(seconds=31))] == [b]


def test_a_row_that_is_no_longer_queued_is_not_claimed(store):
    job = store.create_job("tts", params={})
    store.mark_job(job, "failed", error_type="x")
    assert outbox.claim(store, lease_s=60) == [] and outbox.backlog(store) == (0, 0.0)
