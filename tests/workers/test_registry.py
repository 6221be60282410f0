"""The job-kind registry (`coachup.jobs`) is the one source of queues, routes, SQS names and task modules."""

from __future__ import annotations

from coachup import jobs
from coachup.settings import ENV_VARS, load_settings


def test_queues_routes_and_worker_queues_derive_from_the_registry():
    import celeryconfig
    from coachup.cli import ALL_QUEUES

    assert celeryconfig.QUEUES == ("assessments", "stt", "tts", "callbacks", "summaries", "deadletter")
    assert ALL_QUEUES == "assessments,stt,tts,callbacks,summaries,deadletter"
    for kind in jobs.JOBS:
        assert celeryconfig.TASK_ROUTES[kind.task] == {"queue": kind.queue}
        assert kind.queue in celeryconfig.QUEUES
    assert [k.name for k in jobs.requeued_kinds()] == ["assessment", "stt", "tts", "finalize", "summary"]


def test_every_kind_says_why_a_second_run_is_harmless_and_requeues_only_tracked_jobs():
    for kind in jobs.JOBS:
        assert kind.idempotency, kind.name
        assert not kind.requeue or kind.tracks_job, kind.name  # the row is the sweep's ledger


def test_sqs_queue_names_and_their_variables_come_from_the_registry(tmp_path):
    names = {v.name for v in ENV_VARS}
    for queue in jobs.QUEUES:
        assert f"COACHUP_SQS_{queue.name.upper()}_QUEUE" in names
    s = load_settings({"COACHUP_SQS_STT_QUEUE": "my-stt"})
    assert dict(s.sqs_queue_names) == {
        "assessments": "coach-up-assessments.fifo",
        "stt": "my-stt",
        "tts": "coach-up-tts",
        "callbacks": "coach-up-callbacks",
        "summaries": "coach-up-summaries",
        "deadletter": "coach-up-deadletter",
    }


def test_every_kind_is_registered_by_its_module_with_its_options(offline_settings):
    from workers import create_celery

    settings = offline_settings.replace(test_tasks=True, max_retries=5, persist_max_retries=7)
    app = create_celery(settings)
    for kind in jobs.JOBS:
        if kind.task.endswith(".*"):
            tasks = [t for name, t in app.tasks.items() if name.startswith(kind.task[:-1])]
            assert len(tasks) >= 6, kind.task
        else:
            tasks = [app.tasks[kind.task]]
        for task in tasks:
            assert (task.tracks_job, task.dead_letter) == (kind.tracks_job, kind.dead_letter), task.name
            named = isinstance(kind.max_retries, str)  # a Settings field
            expected = getattr(settings, kind.max_retries) if named else kind.max_retries
            assert task.max_retries == expected, task.name
    # the test-only kind is registered only when asked for
    assert not [n for n in create_celery(offline_settings).tasks if n.startswith("testing.")]


def test_enqueue_builds_the_message_from_the_registry(offline_settings):
    from coachup.context import RequestContext
    from tests.support.broker import waiting_envelopes
    from workers import create_celery
    from workers.enqueue import enqueue

    app = create_celery(offline_settings)
    rt = app.coachup
    ctx = RequestContext(requestId="3f2b8a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b")
    job_id = enqueue(app, rt.store, rt.hasher, "tts", ctx=ctx, session_id="sess-raw", params={"provider": "mock"})
    [envelope] = waiting_envelopes(app, ["tts"])
    headers = envelope["headers"]
    assert headers["task"] == "tts.synthesize" and headers["id"] == job_id
    assert headers["sessionIdHash"] == rt.hasher.session("sess-raw") and headers["provider"] == "mock"
    assert "sess-raw" not in str(envelope) and rt.store.job_record(job_id).kind == "tts"


def test_the_scheduler_runs_every_periodic_kind_on_its_period(offline_settings):
    import celeryconfig

    schedule = celeryconfig.celery_config(offline_settings.replace(idle_sweep_s=7))["beat_schedule"]
    assert {e["task"]: e["schedule"] for e in schedule.values()} == {
        "interactions.sweep": 7.0,
        "jobs.requeue": 7.0,
        "deadletters.resend": 7.0,
        "idempotency.expire": 7.0,
    }


def test_the_requeue_kind_publishes_a_lost_job_again(offline_settings):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from coachup.context import RequestContext
    from coachup.store.models import Job
    from tests.support.broker import waiting_envelopes
    from workers import create_celery
    from workers.brokers.redis import priority_lists
    from workers.enqueue import enqueue

    app = create_celery(offline_settings)
    rt = app.coachup
    ctx = RequestContext(requestId="3f2b8a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b")
    job_id = enqueue(app, rt.store, rt.hasher, "stt", ctx=ctx, params={"provider": "mock"})
    with app.connection_for_write() as conn, conn.default_channel.conn_or_acquire() as client:
        client.delete(*priority_lists("stt"))  # the message is lost; the row still says `queued`
    with rt.store.session() as s, s.begin():
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        s.execute(update(Job).where(Job.id == job_id).values(updated_at=hour_ago))

    result = app.tasks["jobs.requeue"].apply().get()

    assert result == {"relayed": 0, "requeued": 1}
    [envelope] = waiting_envelopes(app, ["stt"])
    assert envelope["headers"]["id"] == job_id and envelope["headers"]["requestId"] == ctx.requestId


def test_the_requeue_tick_relays_a_row_never_published_and_does_not_call_it_lost(offline_settings):
    # a row committed by an API process that died before its relay thread published it
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from coachup.store import outbox
    from coachup.store.models import Job
    from tests.support.broker import waiting_envelopes
    from workers import create_celery

    app = create_celery(offline_settings)
    rt = app.coachup
    job_id = rt.store.create_job("stt", params={"provider": "mock"}, context={"requestId": "r-dead-api"})
    with rt.store.session() as s, s.begin():  # long enough ago for the lost-message sweep to look at it too
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        s.execute(update(Job).where(Job.id == job_id).values(updated_at=hour_ago, created_at=hour_ago))

    result = app.tasks["jobs.requeue"].apply().get()

    assert result == {"relayed": 1, "requeued": 0}  # the relay's, never the sweep's guess
    [envelope] = waiting_envelopes(app, ["stt"])
    assert envelope["headers"]["id"] == job_id and envelope["headers"]["requestId"] == "r-dead-api"
    assert not outbox.unpublished(rt.store, job_id)
    assert app.tasks["jobs.requeue"].apply().get() == {"relayed": 0, "requeued": 0}  # published once


def test_a_child_forked_while_the_parent_builds_its_store_builds_its_own(offline_settings):
    # the depth sampler (a thread of the worker's main process) may be building the store when the pool forks
    # a replacement child; the child must not wait for ever on the lock it inherited
    import os
    import threading

    from workers import create_celery

    runtime = create_celery(offline_settings).coachup
    runtime._lock.acquire()  # what the sampler thread holds at the moment of the fork
    try:
        pid = os.fork()
        if pid == 0:  # the child: one thread, a held lock copied from the parent
            done = threading.Event()
            threading.Thread(target=lambda: (runtime.store.ping(), done.set()), daemon=True).start()
            os._exit(0 if done.wait(10) else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        runtime._lock.release()
    assert os.waitstatus_to_exitcode(status) == 0
