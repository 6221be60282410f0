"""A worker's job acts for its owner only (issue 13), run in-process against a real store (SQLite, PostgreSQL).

A job row names its session and its owner. A redriven letter runs the job row again, so the job (and its
owner) is what it was; but a row that names another owner's session (a tampered letter, a row written by
hand) must not write into that session: the task fails permanently and nothing is stored.
"""

from __future__ import annotations

from coachup.deadletters import DeadLetter
from coachup.store.deadletters import DeadLetterRow, StoreDeadLetters
from coachup.store.owners import claim_session
from coachup.store.summaries import SummaryStore
from tests.workers.test_assessment_task import _celery

ALICE, BOB = "ow:alice000000000", "ow:bob00000000000"


def _alice_closed_group(store) -> None:
    claim_session(store, "alice-sess", ALICE)
    for i, text in enumerate(["I shipped the release on time and the users liked it.", "Next: the flaky tests."]):
        store.ingest_turn(
            session_id="alice-sess",
            message_id=f"m{i}",
            role="user",
            content=text,
            ts=None,
            group_id="grp1",
            end_reason="explicit" if i else None,
            max_turns=12,
        )


def test_a_job_of_another_owner_cannot_write_into_a_session(tmp_path, store_url):
    app = _celery(tmp_path, store_url)
    store = app.coachup.store
    _alice_closed_group(store)
    # Bob's job row pointing at Alice's session (what a tampered or mis-redriven letter would run)
    bobs = store.create_job("assessment", session_id="alice-sess", group_id="grp1", owner=BOB)
    result = app.tasks["assessments.run"].apply(args=[bobs], task_id=bobs)
    assert result.failed() and type(result.result).__name__ == "NotFound"
    assert store.count_assessments("alice-sess", "grp1") == 0
    summary_job = store.create_job("summary", session_id="alice-sess", owner=BOB, params={"throughTurn": 2})
    result = app.tasks[_task_name("summary")].apply(args=[summary_job], task_id=summary_job)
    assert result.failed() and type(result.result).__name__ == "NotFound"
    assert SummaryStore(store).latest("alice-sess") is None
    # Alice's own job (its owner taken from the session when the row is written) runs and stores
    alices = store.create_job("assessment", session_id="alice-sess", group_id="grp1")
    assert store.job_record(alices).owner == ALICE
    assert app.tasks["assessments.run"].apply(args=[alices], task_id=alices).successful()
    assert store.count_assessments("alice-sess", "grp1") == 1


def test_a_dead_letter_keeps_its_jobs_owner(tmp_path, store_url):
    app = _celery(tmp_path, store_url)
    store = app.coachup.store
    _alice_closed_group(store)
    job_id = store.create_job("assessment", session_id="alice-sess", group_id="grp1")
    letter = DeadLetter(
        id=f"{job_id}.0",
        task_id=job_id,
        task="assessments.run",
        queue="assessments",
        reason="permanent",
        error_type="validation_error",
        error_message="x",
        attempts=1,
        first_failure_at="2026-01-01T00:00:00Z",
        last_failure_at="2026-01-01T00:00:00Z",
        args=[job_id],
    )
    assert StoreDeadLetters(store).add(letter)
    with store.session() as s:
        assert s.get(DeadLetterRow, letter.id).owner == ALICE
    # a redrive sends the job id again: the job row, and so its owner, is unchanged
    assert store.job_record(job_id).owner == ALICE


def test_the_redrive_of_bobs_letter_cannot_touch_alices_session(tmp_path, store_url):
    from coachup.redrive import redrive

    app = _celery(tmp_path, store_url)
    store = app.coachup.store
    _alice_closed_group(store)
    bobs = store.create_job("assessment", session_id="alice-sess", group_id="grp1", owner=BOB)
    source = StoreDeadLetters(store)
    assert source.add(_letter(bobs))
    with store.session() as s:
        assert s.get(DeadLetterRow, f"{bobs}.0").owner == BOB  # the letter is Bob's: its job's owner
    outcomes = []

    def send(letter):  # the redriven message, run by a worker in this process
        outcomes.append(app.tasks[letter.task].apply(args=letter.args, task_id=letter.task_id))

    report = redrive(source, send, max_redrives=3, include_permanent=True)  # its reason is `permanent`
    assert report.to_dict()["redriven"] == 1 and len(outcomes) == 1
    assert outcomes[0].failed() and type(outcomes[0].result).__name__ == "NotFound"
    assert store.count_assessments("alice-sess", "grp1") == 0
    assert store.job_record(bobs).owner == BOB  # the redrive kept the job's (and so the letter's) owner


def _letter(job_id: str) -> DeadLetter:
    return DeadLetter(
        id=f"{job_id}.0",
        task="assessments.run",
        task_id=job_id,
        queue="assessments",
        reason="permanent",
        error_type="validation_error",
        error_message="x",
        attempts=1,
        first_failure_at="2026-01-01T00:00:00Z",
        last_failure_at="2026-01-01T00:00:00Z",
        args=[job_id],
    )


def _task_name(kind: str) -> str:
    from coachup.jobs import job_kind

    return job_kind(kind).task
