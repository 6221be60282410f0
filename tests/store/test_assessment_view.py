"""What the front end's poll reads, from one snapshot (SQLite and PostgreSQL).

`latest` names only a finished group (its summary stored, or its job failed), the most recently finished
one; a newer group still going on or queued is `pending`, beside it, never in its place.
"""

from __future__ import annotations

import threading

import pytest

from coachup.store import create_store
from coachup.store.views import assessment_view


@pytest.fixture
def store(store_url):
    store = create_store(store_url)
    yield store
    store.engine.dispose()


def _group(store, session_id: str, message_id: str, *, end: bool) -> str:
    return store.ingest_turn(
        session_id=session_id,
        message_id=message_id,
        role="user",
        content="Some words.",
        ts=None,
        group_id=None,
        end_reason="explicit" if end else None,
        max_turns=12,
    ).group_id


def test_an_unknown_session_has_no_view(store):
    assert assessment_view(store, "nobody") is None


def test_latest_is_the_finished_group_and_a_newer_one_is_pending(store):
    first = _group(store, "s", "m1", end=True)
    job = store.create_job("assessment", session_id="s", group_id=first)
    view = assessment_view(store, "s")
    assert view.latest is None and view.pending.group_id == first and view.pending.status == "queued"
    assert view.selected.status == "queued" and view.selected.summary is None

    store.mark_job(job, "running")
    store.save_assessment(session_id="s", group_id=first, job_id=job, rubric_version="v2", summary={"ok": 1})
    second = _group(store, "s", "m2", end=False)
    view = assessment_view(store, "s")
    assert (view.latest.group_id, view.latest.status, view.latest.summary) == (first, "done", {"ok": 1})
    assert (view.pending.group_id, view.pending.status) == (second, "active")
    assert view.selected is view.latest
    assert assessment_view(store, "s", second).selected.status == "active"
    assert assessment_view(store, "s", "grp_nope").selected is None


def test_a_failed_job_is_finished_until_a_new_job_runs(store):
    group = _group(store, "s", "m1", end=True)
    job = store.create_job("assessment", session_id="s", group_id=group)
    store.mark_job(job, "failed", error_type="timeout", error_message="provider timed out")
    view = assessment_view(store, "s")
    assert (view.latest.group_id, view.latest.status) == (group, "failed")
    assert view.latest.error == {"type": "timeout", "message": "provider timed out"} and view.pending is None
    store.create_job("assessment", session_id="s", group_id=group)  # a rerun
    view = assessment_view(store, "s")
    assert view.latest is None and view.pending.status == "queued"


def test_the_most_recently_finished_group_is_latest(store):
    older = _group(store, "s", "m1", end=True)
    newer = _group(store, "s", "m2", end=True)
    store.save_assessment(session_id="s", group_id=newer, job_id="j2", rubric_version="v2", summary={"n": 2})
    assert assessment_view(store, "s").latest.group_id == newer
    store.save_assessment(session_id="s", group_id=older, job_id="j1", rubric_version="v2", summary={"n": 1})
    assert assessment_view(store, "s").latest.group_id == older  # its chip is still waiting for it


def test_a_reader_never_sees_done_without_its_summary(store):
    # Given a writer that stores results and marks their jobs done, group after group
    groups = [_group(store, "s", f"m{i}", end=True) for i in range(25)]
    jobs = {g: store.create_job("assessment", session_id="s", group_id=g) for g in groups}
    stop, seen = threading.Event(), []

    def read():
        while not stop.is_set():
            view = assessment_view(store, "s")
            for g in (view.latest, view.pending, view.selected):
                if g is not None:
                    seen.append((g.status, g.summary is not None))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for g in groups:
            store.mark_job(jobs[g], "running")
            store.save_assessment(session_id="s", group_id=g, job_id=jobs[g], rubric_version="v2", summary={"g": g})
            store.mark_job(jobs[g], "done")
    finally:
        stop.set()
        reader.join()
    # Then every `done` the reader saw came with its summary, and only `done` did
    assert seen and all(has_summary == (status == "done") for status, has_summary in seen)
