"""The assessment task itself, run in-process against a real store: idempotency (the finalize callback it
queues is tested in tests/workers/test_finalize_callback.py)."""

from __future__ import annotations

from coachup.settings import load_settings
from tests.conftest import TEST_HASH_SECRET


def _celery(tmp_path, store_url, **env):
    from workers import create_celery

    settings = load_settings(
        {
            "COACHUP_DATA_DIR": str(tmp_path),
            "COACHUP_DATABASE_URL": store_url,
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "ASSESSMENTS_BACKOFF_BASE_MS": "10",
            **env,
        }
    )
    return create_celery(settings)


def _closed_group_with_job(app) -> str:
    store = app.coachup.store
    for i, text in enumerate(
        ["I shipped the release on time and the customers were happy with it.", "Next I will fix the flaky tests."]
    ):
        store.ingest_turn(
            session_id="sess",
            message_id=f"m{i}",
            role="user",
            content=text,
            ts=None,
            group_id="grp1",
            end_reason="explicit" if i else None,
            max_turns=12,
        )
    return store.create_job("assessment", session_id="sess", group_id="grp1")


def test_running_the_same_job_twice_stores_one_result(tmp_path, store_url):
    # Given a closed group and its job
    app = _celery(tmp_path, store_url)
    job_id = _closed_group_with_job(app)
    task = app.tasks["assessments.run"]

    # When the task runs twice (a redelivery after a lost ack looks exactly like this)
    first = task.apply(args=[job_id], task_id=job_id).get()
    second = task.apply(args=[job_id], task_id=job_id).get()

    # Then one result is stored and both runs report the same scores
    store = app.coachup.store
    assert store.count_assessments("sess", "grp1") == 1
    assert first["scores"] == second["scores"]
    assert store.get_job(job_id)["status"] == "done" and store.get_job(job_id)["attempts"] == 1


def test_unknown_job_fails_permanently_without_retry(tmp_path):
    app = _celery(tmp_path, f"sqlite:///{tmp_path / 's.sqlite'}")
    result = app.tasks["assessments.run"].apply(args=["4b7c0a4e-0000-4000-8000-000000000000"])
    assert result.failed() and type(result.result).__name__ == "NotFound"
