"""One transaction for an inline transcript: every turn and the close, or nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from coachup.store import GroupIdle, create_store
from coachup.store.batch import ingest_turns

TURNS = [("g1:0", "user", "first", None), ("g1:1", "assistant", "second", None), ("g1:2", "user", "third", None)]


def test_turns_are_stored_in_order_and_the_group_closed_in_one_call(store_url):
    store = create_store(store_url)
    outcomes = ingest_turns(store, session_id="s", group_id="g1", turns=TURNS, close_reason="api").outcomes
    assert [o.turn_count for o in outcomes] == [1, 2, 3] and not any(o.deduped for o in outcomes)
    assert [t.content for t in store.load_turns("s", "g1")] == ["first", "second", "third"]
    info = store.group_info("s", "g1")
    assert info["state"] == "idle" and info["turnCount"] == 3


def test_a_resent_transcript_is_deduped_per_message(store_url):
    store = create_store(store_url)
    ingest_turns(store, session_id="s", group_id="g1", turns=TURNS[:2])
    again = ingest_turns(store, session_id="s", group_id="g1", turns=TURNS, close_reason="api").outcomes
    assert [o.deduped for o in again] == [True, True, False]
    assert len(store.load_turns("s", "g1")) == 3


def test_a_closed_group_refuses_the_batch_and_keeps_nothing_of_it(store_url):
    store = create_store(store_url)
    ingest_turns(store, session_id="s", group_id="g1", turns=TURNS[:1], close_reason="api")
    with pytest.raises(GroupIdle):
        ingest_turns(
            store, session_id="s", group_id="g1", turns=[("n1", "user", "late", None), ("n2", "user", "later", None)]
        )
    assert [t.content for t in store.load_turns("s", "g1")] == ["first"]


def test_the_job_row_is_written_with_the_batch_that_closes_the_group(store_url):
    store = create_store(store_url)
    result = ingest_turns(
        store,
        session_id="s",
        group_id="g1",
        turns=TURNS,
        close_reason="api",
        job={"request_id": "r-1", "params": {"trackedSkills": []}},
    )
    job = store.get_job(result.job_id)
    assert job["status"] == "queued" and job["groupId"] == "g1"
    assert store.active_assessment_job("s", "g1")["taskId"] == result.job_id
    # a resend of the same transcript closes nothing and writes no second job
    again = ingest_turns(
        store, session_id="s", group_id="g1", turns=TURNS, close_reason="api", job={"request_id": "r-2"}
    )
    assert again.job_id is None and all(o.deduped for o in again.outcomes)


def test_a_message_repeated_within_one_batch_is_stored_once(store_url):
    store = create_store(store_url)
    result = ingest_turns(store, session_id="s", group_id="g1", turns=[TURNS[0], TURNS[0], TURNS[1]])
    assert [o.deduped for o in result.outcomes] == [False, True, False]
    assert [t.content for t in store.load_turns("s", "g1")] == ["first", "second"]


def test_a_message_seen_in_another_group_reports_that_group(store_url):
    store = create_store(store_url)
    ingest_turns(store, session_id="s", group_id="g0", turns=[("m", "user", "zero", None)], close_reason="api")
    result = ingest_turns(store, session_id="s", group_id="g1", turns=[("m", "user", "zero", None), TURNS[1]])
    assert (result.outcomes[0].deduped, result.outcomes[0].group_id, result.outcomes[0].state) == (True, "g0", "idle")
    assert [t.content for t in store.load_turns("s", "g1")] == ["second"]
