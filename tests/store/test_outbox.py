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


def test_marking_or_releasing_no_rows_touches_nothing(store):
    job = store.create_job("tts", params={})
    outbox.claim(store, lease_s=60)
    assert outbox.mark_all_published(store, []) == 0
    outbox.release_all(store, [], retry_at=utcnow())
    assert outbox.unpublished(store, job) and outbox.claim(store, lease_s=60) == []  # still leased, not released


def test_a_row_that_is_no_longer_queued_is_not_claimed(store):
    job = store.create_job("tts", params={})
    store.mark_job(job, "failed", error_type="x")
    assert outbox.claim(store, lease_s=60) == [] and outbox.backlog(store) == (0, 0.0)


def _row(store, job_id: str):
    from coachup.store.models import Job

    with store.session() as s:
        job = s.get(Job, job_id)
        return job.publish_attempts, job.publish_claimed_until, job.published_at


def _aware(value):
    from datetime import UTC

    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def test_a_claim_returns_every_field_the_relay_publishes_with_and_holds_the_lease_from_now(store):
    job = store.create_job(
        "assessment",
        session_id="s9",
        group_id="g9",
        request_id="req-9",
        params={"trackedSkills": ["k"]},
        context=JOB["context"],
    )
    bare = store.create_job("tts", params=None)
    now = utcnow() + timedelta(seconds=5)
    rows = outbox.claim(store, lease_s=30, now=now)
    assert [r.id for r in rows] == [job, bare]
    row, plain = rows
    assert (row.kind, row.session_id, row.group_id, row.request_id) == ("assessment", "s9", "g9", "req-9")
    assert (row.params, row.context) == ({"trackedSkills": ["k"]}, JOB["context"])
    assert row.created_at.tzinfo is not None and abs((row.created_at - utcnow()).total_seconds()) < 60
    assert (plain.session_id, plain.group_id, plain.request_id, plain.params, plain.context) == (
        None,
        None,
        None,
        {},
        {},
    )
    attempts, until, published = _row(store, job)
    assert (attempts, _aware(until), published) == (1, now + timedelta(seconds=30), None)
    assert outbox.claim(store, lease_s=30, now=now + timedelta(seconds=29)) == []  # leased until now + lease_s
    assert len(outbox.claim(store, lease_s=30, now=now + timedelta(seconds=31))) == 2
    assert _row(store, job)[0] == 2  # every claim counts an attempt


def test_a_claim_takes_the_oldest_rows_up_to_its_limit_and_only_the_named_jobs(store):
    ids = [store.create_job("tts", params={}) for _ in range(4)]
    assert outbox.claim(store, lease_s=60, job_ids=[]) == []  # named none: claims none
    assert [r.id for r in outbox.claim(store, lease_s=60, job_ids=[ids[3], ids[1]])] == [ids[1], ids[3]]
    assert [r.id for r in outbox.claim(store, lease_s=60, limit=1)] == [ids[0]]
    assert [r.id for r in outbox.claim(store, lease_s=60)] == [ids[2]]
    assert _row(store, ids[0])[0] == 1 and _row(store, ids[1])[0] == 1


def test_marking_stamps_the_publish_time_and_ends_the_lease_releasing_leaves_a_published_row_alone(store):
    job = store.create_job("tts", params={})
    assert outbox.unpublished(store, job) and not outbox.unpublished(store, "no-such-job")
    outbox.claim(store, lease_s=60)
    stamp = utcnow() - timedelta(seconds=3)
    assert outbox.mark_published(store, job, now=stamp) is True
    attempts, until, published = _row(store, job)
    assert (attempts, until, _aware(published)) == (1, None, stamp) and not outbox.unpublished(store, job)
    outbox.release(store, job, retry_at=utcnow() + timedelta(seconds=30))  # a late release of a published row
    assert _row(store, job)[1] is None
    assert outbox.mark_published(store, job) is False
    other = store.create_job("tts", params={})
    assert outbox.mark_published(store, other) is True and _row(store, other)[2] is not None  # now by default


def test_the_backlog_counts_pending_rows_and_the_age_of_the_oldest(store):
    assert outbox.backlog(store) == (0, 0.0)
    first = store.create_job("tts", params={})
    store.create_job("tts", params={})
    (row, _) = outbox.claim(store, lease_s=60)  # claimed rows are still pending
    count, age = outbox.backlog(store, now=row.created_at + timedelta(seconds=90))
    assert (count, age) == (2, 90.0)
    assert outbox.backlog(store, now=row.created_at - timedelta(seconds=5)) == (2, 0.0)  # never negative
    outbox.mark_published(store, first)
    assert outbox.backlog(store)[0] == 1


def test_a_release_moves_only_its_own_rows_lease(store):
    kept, released = store.create_job("tts", params={}), store.create_job("tts", params={})
    outbox.claim(store, lease_s=60)
    outbox.release(store, released, retry_at=utcnow() + timedelta(seconds=30))
    later = utcnow() + timedelta(seconds=31)
    assert [r.id for r in outbox.claim(store, lease_s=60, now=later)] == [released]  # the other keeps its lease
    assert _row(store, kept)[0] == 1


def test_a_claim_limit_counts_only_rows_it_may_take(store):
    published, leased = store.create_job("tts", params={}), store.create_job("tts", params={})
    waiting = store.create_job("tts", params={})
    outbox.claim(store, lease_s=60, job_ids=[published, leased])
    outbox.mark_published(store, published)
    # the two older rows (one published, one under a live lease) do not use up a claim of one
    assert [r.id for r in outbox.claim(store, lease_s=60, limit=1)] == [waiting]
