"""The assessment task in-process on a real store: a group with no user speech is a terminal, counted,
non-error outcome, and too little speech is stored without levels (no retry, no dead letter)."""

from __future__ import annotations

from coachup.settings import load_settings
from coachup.store.deadletters import StoreDeadLetters
from tests.conftest import TEST_HASH_SECRET
from workers.metrics_host import metrics_for


def _celery(tmp_path, store_url):
    from workers import create_celery

    settings = load_settings(
        {
            "COACHUP_DATA_DIR": str(tmp_path),
            "COACHUP_DATABASE_URL": store_url,
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "ASSESSMENTS_BACKOFF_BASE_MS": "10",
        }
    )
    return create_celery(settings)


def _closed_group(app, turns: list[tuple[str, str]]) -> str:
    store = app.coachup.store
    for i, (role, text) in enumerate(turns):
        store.ingest_turn(
            session_id="sess",
            message_id=f"m{i}",
            role=role,
            content=text,
            ts=None,
            group_id="grp1",
            end_reason="explicit" if i == len(turns) - 1 else None,
            max_turns=12,
        )
    return store.create_job("assessment", session_id="sess", group_id="grp1")


def _skipped_count(app) -> float:
    return metrics_for(app).registry.get_sample_value("coachup_assessments_skipped_total") or 0.0


def test_a_group_with_no_user_speech_ends_done_as_skipped_and_is_counted(tmp_path, store_url):
    # Given a closed group in which only the assistant spoke (the greeting that once became a dead letter)
    app = _celery(tmp_path, store_url)
    job_id = _closed_group(app, [("assistant", "Welcome back! Good luck today."), ("assistant", "Ready when you are.")])
    task = app.tasks["assessments.run"]
    before = _skipped_count(app)

    # When the task runs, twice (a redelivery)
    first = task.apply(args=[job_id], task_id=job_id)
    second = task.apply(args=[job_id], task_id=job_id)

    # Then it succeeded without a retry, reporting skipped, and the job is done, not failed
    assert first.successful() and second.successful(), (first.result, second.result)
    assert first.get()["status"] == "skipped" and first.get()["scores"] is None
    store = app.coachup.store
    job = store.get_job(job_id)
    assert job["status"] == "done" and job["attempts"] == 1
    # And one summary with status skipped is stored, counted once, and nothing was dead-lettered
    summary = store.get_assessment("sess", "grp1")
    assert summary["status"] == "skipped" and summary["meta"]["evidence"] == {"userWords": 0, "userTurns": 0}
    assert store.count_assessments("sess", "grp1") == 1
    assert _skipped_count(app) - before == 1
    assert StoreDeadLetters(store).depth() == 0


def test_too_little_speech_is_stored_without_levels_and_is_not_skipped(tmp_path, store_url):
    # Given a group where the user said one word
    app = _celery(tmp_path, store_url)
    job_id = _closed_group(app, [("assistant", "How did the review go?"), ("user", "a")])
    before = _skipped_count(app)
    # When the task runs
    result = app.tasks["assessments.run"].apply(args=[job_id], task_id=job_id)
    # Then the job is done, the summary says why there are no levels, and it is not counted as skipped
    assert result.successful() and result.get()["status"] == "done"
    summary = app.coachup.store.get_assessment("sess", "grp1")
    assert summary["status"] == "insufficient_evidence" and summary["scores"] is None
    assert {a["level"] for a in summary["skillAssessments"]} == {None}
    assert _skipped_count(app) == before
