"""The run lease in the store (SQLite and PostgreSQL): of several deliveries of one job claiming at once exactly
one wins; the others learn how long the lease lasts, or that the job is done; an expired lease is taken over."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from coachup.store import create_store, runs
from coachup.store.migrate import SCHEMA_VERSION
from coachup.store.models import SchemaMeta, utcnow


@pytest.fixture
def store(store_url):
    s = create_store(store_url)
    yield s
    s.engine.dispose()


def test_one_of_many_concurrent_claims_wins_and_the_others_see_its_lease(store):
    # Given a queued job and eight deliveries of its message claiming at the same instant
    job = store.create_job("tts", params={})
    barrier = threading.Barrier(8)
    outcomes: dict[str, runs.RunClaim] = {}

    def deliver(i: int) -> None:
        barrier.wait()
        outcomes[f"t{i}"] = runs.claim(store, job, f"t{i}", lease_s=60)

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then exactly one holds the run, the job is `running` with one attempt, and each other sees ~60 s left
    winners = [token for token, o in outcomes.items() if o.claimed]
    assert len(winners) == 1, outcomes
    assert all(50 < o.remaining_s <= 61 and not o.done for o in outcomes.values() if not o.claimed)
    row = store.get_job(job)
    assert (row["status"], store.job_record(job).attempts) == ("running", 1)
    assert runs.lease_of(store, job)[0] == winners[0]


def test_a_released_lease_is_claimable_and_a_done_job_is_not(store):
    job = store.create_job("tts", params={})
    assert runs.claim(store, job, "a", lease_s=60).claimed
    assert runs.claim(store, job, "a", lease_s=60).claimed  # the holder may claim again (same token)
    assert not runs.release(store, job, "b")  # only the holder's token releases
    assert not runs.claim(store, job, "b", lease_s=60).claimed
    assert runs.release(store, job, "a")
    assert runs.lease_of(store, job) == (None, None)
    assert runs.claim(store, job, "b", lease_s=60).claimed
    store.mark_job(job, "done", result={"ok": True})
    runs.release(store, job, "b")
    # a copy delivered after the job finished learns it is done and takes nothing
    outcome = runs.claim(store, job, "c", lease_s=60)
    assert (outcome.claimed, outcome.done) == (False, True)
    assert store.get_job(job)["status"] == "done"


def test_an_expired_lease_is_taken_over(store):
    # Given a holder that claimed and died (it never released)
    job = store.create_job("stt", params={})
    long_ago = utcnow() - timedelta(seconds=120)
    assert runs.claim(store, job, "dead", lease_s=60, now=long_ago).claimed
    # Then a later delivery claims the job once the lease has run out
    outcome = runs.claim(store, job, "next", lease_s=60)
    assert outcome.claimed
    assert runs.lease_of(store, job)[0] == "next" and store.job_record(job).attempts == 2
    assert runs.claim(store, "no-such-job", "x", lease_s=60).missing


def test_a_live_lease_of_a_holder_known_dead_is_taken_over_and_of_one_not_known_dead_is_not(store):
    # Given a holder with a live lease (60 s left)
    job = store.create_job("tts", params={})
    assert runs.claim(store, job, "holder", lease_s=60).claimed
    asked: list[str] = []

    def alive(token: str) -> bool:
        asked.append(token)
        return False

    # When a copy cannot tell the holder is gone (another host, a live pid): it waits, nothing changes
    outcome = runs.claim(store, job, "copy", lease_s=60, dead=alive)
    assert (outcome.claimed, outcome.taken_over, asked) == (False, False, ["holder"])
    assert 50 < outcome.remaining_s <= 61 and runs.lease_of(store, job)[0] == "holder"
    # When the copy knows the holder's process is gone: it takes the lease over at once, counted as an attempt
    outcome = runs.claim(store, job, "copy", lease_s=60, dead=lambda token: token == "holder")
    assert (outcome.claimed, outcome.taken_over) == (True, True)
    assert runs.lease_of(store, job)[0] == "copy" and store.job_record(job).attempts == 2
    # and a third copy, judging every holder dead, takes nothing from a done job
    store.mark_job(job, "done", result={"ok": True})
    outcome = runs.claim(store, job, "third", lease_s=60, dead=lambda token: True)
    assert (outcome.claimed, outcome.done) == (False, True)


def test_a_version_5_store_gets_the_run_lease_columns(store_url):
    # Given a store written before the run lease
    store = create_store(store_url)
    job = store.create_job("tts", job_id="job-v5", params={})
    with store.engine.begin() as conn:
        for column in ("run_token", "run_lease_until"):
            conn.execute(text(f"ALTER TABLE jobs DROP COLUMN {column}"))
        conn.execute(text("UPDATE coachup_schema SET value = '5' WHERE key = 'version'"))
    store.engine.dispose()
    # When a process opens it, then its job is free to claim, and the schema says the new version
    store = create_store(store_url)
    assert runs.lease_of(store, job) == (None, None)
    assert runs.claim(store, job, "t", lease_s=60).claimed
    with store.session() as s:
        assert s.scalar(select(SchemaMeta.value).where(SchemaMeta.key == "version")) == str(SCHEMA_VERSION)
    store.engine.dispose()
