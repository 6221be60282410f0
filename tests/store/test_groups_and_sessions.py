"""Group states (`active` / `idle`), the closing-cue rule, tracked skills and the database's own rules."""

from __future__ import annotations

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from coachup.store import GroupIdle, create_store
from coachup.store.models import InteractionGroup, TranscriptTurn


@pytest.fixture
def store(store_url):
    store = create_store(store_url)
    yield store
    store.engine.dispose()


def _turn(store, message_id, role="user", *, end_reason=None, group_id=None, tracked=None, max_turns=12, session="s"):
    return store.ingest_turn(
        session_id=session,
        message_id=message_id,
        role=role,
        content="Some words here.",
        ts=None,
        group_id=group_id,
        end_reason=end_reason,
        max_turns=max_turns,
        tracked_skills=tracked,
    )


def test_a_group_is_active_until_a_closing_reply_then_idle(store):
    first = _turn(store, "u1")
    assert (first.state, first.turn_count, first.closed_now) == ("active", 1, False)
    reply = _turn(store, "a1", "assistant", end_reason="closing_cue")
    assert (reply.state, reply.group_id, reply.close_reason) == ("idle", first.group_id, "closing_cue")
    assert store.group_info("s", first.group_id)["state"] == "idle"
    with pytest.raises(GroupIdle):
        _turn(store, "late", group_id=first.group_id)
    assert _turn(store, "u2").group_id != first.group_id


def test_a_closing_cue_never_ends_a_group_without_user_speech(store):
    greeting = _turn(store, "hello", "assistant", end_reason="closing_cue")  # "Hi! Good luck today."
    assert (greeting.state, greeting.closed_now) == ("active", False)
    user = _turn(store, "u1")
    assert user.group_id == greeting.group_id and user.turn_count == 2
    # explicit end and max turns still end a group with no user speech
    assert _turn(store, "a", "assistant", end_reason="explicit", session="t").state == "idle"
    lone = _turn(store, "a", "assistant", max_turns=1, session="v")
    assert lone.state == "idle" and lone.close_reason == "max_turns"


def test_naming_a_new_group_ends_the_active_one(store):
    active = _turn(store, "u1")
    named = _turn(store, "u2", group_id="grp_other")
    assert (named.group_id, named.state, named.superseded) == ("grp_other", "active", active.group_id)
    assert store.group_info("s", active.group_id)["state"] == "idle"
    assert store.group_info("s", active.group_id)["closeReason"] == "superseded"
    assert _turn(store, "u3").group_id == "grp_other"  # the named group is the active one now


def test_tracked_skills_are_remembered_per_session_and_come_back_on_a_resend(store):
    assert _turn(store, "u1").tracked_skills is None  # the defaults
    assert _turn(store, "u2", tracked=["clarity_eloquence", "conciseness"]).tracked_skills == (
        "clarity_eloquence",
        "conciseness",
    )
    assert _turn(store, "u3").tracked_skills == ("clarity_eloquence", "conciseness")
    assert store.tracked_skills("s") == ("clarity_eloquence", "conciseness")
    assert store.remember_tracked_skills("s", []) is None and store.tracked_skills("s") is None
    assert store.tracked_skills("nobody") is None and not store.session_exists("nobody")


def test_the_database_refuses_a_second_active_group_and_a_repeated_seq(store):
    first = _turn(store, "u1")
    with store.engine.begin() as conn, pytest.raises(IntegrityError):
        conn.execute(insert(InteractionGroup).values(session_id="s", group_id="g2", state="active", turn_count=0))
    with store.engine.begin() as conn, pytest.raises(IntegrityError):
        conn.execute(
            insert(TranscriptTurn).values(
                session_id="s", group_id=first.group_id, message_id="dup", seq=0, role="user", content="x"
            )
        )
    # two idle groups of one session are fine
    with store.engine.begin() as conn:
        for gid in ("g3", "g4"):
            conn.execute(insert(InteractionGroup).values(session_id="s", group_id=gid, state="idle", turn_count=0))


def test_counts_sessions_and_results(store):
    _turn(store, "u1")
    store.save_assessment(session_id="s", group_id="g", job_id="j", rubric_version="v2", summary={})
    assert store.counts() == {"sessions": 1, "results": 1}
