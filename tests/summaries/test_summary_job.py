"""The background summary job with real workers on every stack (embedded, Redis, SQS; SQLite, PostgreSQL):
ingest queues one job per window of `SUMMARY_WINDOW_N` turns, the worker writes the next version covering
the window, a resent turn queues nothing, and the summary says what was said."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from coachup.store.models import Job
from coachup.store.summaries import SummaryStore
from tests.support.wait import wait_until


def _summary_jobs(store, session_id: str) -> list[Job]:
    with store.session() as s:
        return list(s.scalars(select(Job).where(Job.kind == "summary", Job.session_id == session_id)))


def _turn(i: int) -> str:
    return f"For practice round {i} I want to open my investor pitch with the {i * 7} percent growth figure."


def _said(rounds) -> set[str]:
    return {f"{'User' if i % 2 == 0 else 'Coach'}: {_turn(i)}" for i in rounds}


def _points(text: str) -> set[str]:
    return {line[2:] for line in text.splitlines()[1:]}


def test_the_summary_refreshes_every_window_of_ingested_turns(stack):
    app = stack.app()
    client, store = app.test_client(), app.extensions["coachup"].store
    sums = SummaryStore(store)
    n = stack.settings.summary_window_n
    sid = "sess-cadence-" + uuid.uuid4().hex[:8]

    def ingest(i: int) -> dict:
        role = "user" if i % 2 == 0 else "assistant"
        r = client.post(
            "/messages/ingest", json={"sessionId": sid, "messageId": f"m{i}", "role": role, "content": _turn(i)}
        )
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    # Given N turns ingested, then one job was queued, and the worker writes version 1 covering them
    for i in range(n):
        ingest(i)
    assert len(_summary_jobs(store, sid)) == 1
    first = wait_until(lambda: sums.latest(sid), timeout=60, what=f"summary v1 on {stack.name}")
    assert (first.version, first.turns_covered, first.source) == (1, n, "job")
    assert _points(first.text) <= _said(range(n)) and _points(first.text), "faithful to what was said"
    # When N-1 more turns arrive, no job is queued and the summary stays
    for i in range(n, 2 * n - 1):
        ingest(i)
    assert len(_summary_jobs(store, sid)) == 1 and sums.latest(sid).version == 1
    # and the turn that completes the second window queues exactly one more, which writes version 2
    ingest(2 * n - 1)
    assert len(_summary_jobs(store, sid)) == 2
    second = wait_until(
        lambda: (r := sums.latest(sid)) and r.version == 2 and r, timeout=60, what=f"summary v2 on {stack.name}"
    )
    assert second.turns_covered == 2 * n
    assert _points(second.text) <= _said(range(2 * n))
    assert _points(second.text) & _said(range(n, 2 * n)), "the newest window is in the summary"
    # A resent turn (same messageId) is deduped and queues nothing
    assert ingest(2 * n - 1)["deduped"] is True
    assert len(_summary_jobs(store, sid)) == 2

    def all_done():
        jobs = _summary_jobs(store, sid)
        return jobs if all(j.status == "done" for j in jobs) else None

    jobs = wait_until(all_done, timeout=30, what="both summary jobs done")
    assert sorted(j.params["window"] for j in jobs) == [1, 2]
    with store.session() as s:  # one version per window, never more
        from coachup.store.summaries import SessionSummaryRow

        count = s.scalar(select(func.count()).select_from(SessionSummaryRow).where(SessionSummaryRow.session_id == sid))
    assert count == 2
