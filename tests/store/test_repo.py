"""The store behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from coachup.store import create_store


def test_ingest_is_idempotent_per_message(store_url):
    store = create_store(store_url)
    a = store.ingest_turn(
        session_id="s",
        message_id="m1",
        role="user",
        content="hi",
        ts=None,
        group_id=None,
        end_reason=None,
        max_turns=12,
    )
    b = store.ingest_turn(
        session_id="s",
        message_id="m1",
        role="user",
        content="hi",
        ts=None,
        group_id=None,
        end_reason=None,
        max_turns=12,
    )
    assert (a.deduped, b.deduped) == (False, True) and a.group_id == b.group_id and b.turn_count == 1
    assert len(store.load_turns("s", a.group_id)) == 1


def test_turns_keep_their_order_and_groups_roll_over(store_url):
    store = create_store(store_url)
    outcomes = [
        store.ingest_turn(
            session_id="s",
            message_id=f"m{i}",
            role="user",
            content=f"t{i}",
            ts=None,
            group_id=None,
            end_reason=None,
            max_turns=3,
        )
        for i in range(4)
    ]
    assert [o.turn_count for o in outcomes] == [1, 2, 3, 1]
    assert outcomes[2].closed_now and outcomes[2].close_reason == "max_turns"
    assert outcomes[3].group_id != outcomes[0].group_id
    assert [t.content for t in store.load_turns("s", outcomes[0].group_id)] == ["t0", "t1", "t2"]


def test_summary_is_saved_once_per_group(store_url):
    store = create_store(store_url)
    first = store.save_assessment(session_id="s", group_id="g", job_id="j1", rubric_version="v1", summary={"a": 1})
    second = store.save_assessment(session_id="s", group_id="g", job_id="j2", rubric_version="v1", summary={"a": 2})
    assert (first, second) == (True, False)
    assert store.get_assessment("s", "g") == {"a": 1} and store.count_assessments("s", "g") == 1


def test_idle_groups_close_and_wait_for_a_job(store_url):
    store = create_store(store_url)
    o = store.ingest_turn(
        session_id="s", message_id="m", role="user", content="x", ts=None, group_id=None, end_reason=None, max_turns=12
    )
    assert store.close_idle_groups(timedelta(hours=1)) == []
    assert store.close_idle_groups(timedelta(seconds=-1)) == [("s", o.group_id)]
    assert store.closed_groups_awaiting_job() == [("s", o.group_id)]
    job_id = store.create_job("assessment", session_id="s", group_id=o.group_id)
    assert store.closed_groups_awaiting_job() == []
    store.mark_job(job_id, "failed", error_type="timeout", error_message="x")
    assert store.closed_groups_awaiting_job() == []  # a failed job is a dead letter, not re-queued here


def test_schema_init_is_idempotent(store_url):
    create_store(store_url)
    store = create_store(store_url)
    with store.session() as s:
        from sqlalchemy import func, select

        from coachup.store.models import SkillRow

        assert s.scalar(select(func.count()).select_from(SkillRow)) >= 6
