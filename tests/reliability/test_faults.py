"""Faults with real processes on private servers: crashes, kills and outages lose no job and double none.

Each test records its numbers (`record`) for `docs/reliability.md`. The shared Redis/PostgreSQL are never
stopped: every outage happens to a private server on a free port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.fake_openai import ScriptedOpenAI
from tests.support.private_pg import PrivatePostgres
from tests.support.wait import wait_until
from tests.support.worker import pool_children

from .harness import DrillStack
from .record import record

HELD = "HOLDME: I presented the roadmap to the board and answered every question they asked about hiring."


@pytest.fixture
def held_llm():
    """An OpenAI-compatible server that holds the first call until `release` is set."""
    fake = ScriptedOpenAI(hold_calls=1).start()
    yield fake
    fake.stop()


def _llm_env(fake: ScriptedOpenAI, vt_s: int = 8) -> dict[str, str]:
    return {
        "AI_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test-not-a-real-key-000",
        "OPENAI_BASE_URL": fake.base_url,
        "COACHUP_DEFAULT_SKILLS": "clarity_eloquence",
        "COACHUP_VISIBILITY_TIMEOUT_S": str(vt_s),
        "ASSESSMENTS_BACKOFF_MAX_MS": "1000",
        "ASSESSMENT_GROUP_TIMEOUT_MS": "5000",
        "ASSESSMENT_SKILL_TIMEOUT_MS": "5000",
    }


@pytest.fixture
def drill(tmp_path):
    stacks = []

    def make(**env) -> DrillStack:
        stacks.append(DrillStack(tmp_path / f"s{len(stacks)}", **env))
        return stacks[-1]

    yield make
    for s in stacks:
        s.close()


def test_sigkill_of_the_pool_child_mid_assessment_reruns_the_job_once(drill, held_llm, tmp_path):
    # Given a worker whose only pool child is inside an assessment (its LLM call is held)
    stack = drill(database_url=f"sqlite:///{tmp_path / 'f1.sqlite'}", **_llm_env(held_llm))
    worker = stack.worker("f1", concurrency=1)
    [job] = stack.submit(1, content=HELD)
    wait_until(lambda: held_llm.calls_with("HOLDME") >= 1, timeout=30, what="the assessment to reach its LLM")
    # When the child is SIGKILLed
    started = time.monotonic()
    for child in pool_children(worker.proc.pid):
        os.kill(child, signal.SIGKILL)
    held_llm.release.set()
    # Then the job runs again and finishes, with exactly one result, and the worker lives on
    wait_until(lambda: stack.tally([job])["done"] == 1, timeout=60, interval=0.2, what="the rerun to finish")
    t, o = stack.tally([job]), stack.observed([job])
    # the killed run and the rerun started; only the rerun completed
    assert (t["results"], t["rerun"], o["runs"], o["completedRuns"]) == (1, 1, 2, 1), (t, o)
    assert worker.proc.poll() is None
    record(
        "fault",
        "1. SIGKILL pool child mid-assessment",
        **t,
        **o,
        providerCalls=held_llm.calls_with("HOLDME"),
        recoverS=round(time.monotonic() - started, 2),
    )


@pytest.mark.drill
def test_sigkill_of_the_whole_worker_is_redelivered_after_the_visibility_timeout(drill, held_llm, tmp_path):
    vt = 6
    stack = drill(database_url=f"sqlite:///{tmp_path / 'f2.sqlite'}", **_llm_env(held_llm, vt))
    first = stack.worker("f2a", concurrency=1)
    [job] = stack.submit(1, content=HELD)
    wait_until(lambda: held_llm.calls_with("HOLDME") >= 1, timeout=30, what="the assessment to reach its LLM")
    # When every process of the worker is SIGKILLed, the message waits in the unacked set
    first.kill()
    killed = time.monotonic()
    assert stack.unacked() == 1
    held_llm.release.set()
    # Then a new worker started after the visibility timeout restores and finishes it
    wait_until(lambda: time.monotonic() - killed > vt, timeout=vt + 5, what="the visibility timeout to pass")
    stack.worker("f2b", concurrency=1)
    wait_until(lambda: stack.tally([job])["done"] == 1, timeout=60, interval=0.2, what="the new worker to finish")
    wait_until(lambda: stack.unacked() == 0, timeout=10, what="the unacked set to empty")
    t, o = stack.tally([job]), stack.observed([job])
    # the run on the killed worker and the one on the new worker started; only the second completed
    assert (t["results"], o["runs"], o["completedRuns"]) == (1, 2, 1), (t, o)
    record(
        "fault",
        "2. SIGKILL whole worker",
        **t,
        **o,
        providerCalls=held_llm.calls_with("HOLDME"),
        unackedAfter=stack.unacked(),
        visibilityTimeoutS=vt,
        recoverS=round(time.monotonic() - killed, 2),
    )


@pytest.mark.drill
def test_a_redis_restart_with_200_jobs_queued_loses_and_doubles_nothing(drill):
    from tests.support.services import PostgresDatabase

    pg = PostgresDatabase()
    try:
        # a message a worker held when Redis went away stays in Redis's unacked set (the AOF keeps it) and
        # comes back after the visibility timeout: a short one here, so the drill sees it come back. A message
        # popped in the instant Redis stopped, before kombu recorded it as unacked, is gone from Redis: the
        # scheduler's sweep publishes its job again (`workers.requeue`), after a short wait here too
        stack = drill(
            database_url=pg.url,
            COACHUP_VISIBILITY_TIMEOUT_S="20",
            ASSESSMENTS_BACKOFF_MAX_MS="2000",
            ASSESSMENT_GROUP_TIMEOUT_MS="8000",
            ASSESSMENT_SKILL_TIMEOUT_MS="5000",
            COACHUP_REQUEUE_AFTER_S="10",
            COACHUP_IDLE_SWEEP_S="2",
        )
        workers = [stack.worker("f3a", concurrency=1), stack.worker("f3b", concurrency=1)]
        stack.beat()
        pids = [w.proc.pid for w in workers]
        jobs = stack.submit(200)
        # When Redis (append-only) restarts while the workers consume
        started = time.monotonic()
        stack.redis.stop()
        stack.redis.start()
        # Then all 200 finish without restarting the workers, none doubled
        try:
            wait_until(lambda: stack.tally(jobs)["done"] == 200, timeout=180, interval=0.5, what="200 jobs done")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; tally {stack.tally(jobs)}; broker {stack.broker_state(jobs)}") from None
        t, o = stack.tally(jobs), stack.observed(jobs)
        # every job was taken and run by a worker; how many ran twice is what the restart cost
        assert (t["results"], t["failed"], o["jobsRun"]) == (200, 0, 200), (t, o)
        assert [w.proc.pid for w in workers] == pids and all(w.proc.poll() is None for w in workers)
        record(
            "fault",
            "3. Redis restart (AOF) with 200 queued",
            **t,
            **o,
            requeued=stack.requeued(),
            recoverS=round(time.monotonic() - started, 2),
        )
    finally:
        stack.close()
        pg.drop()


def test_broker_down_still_accepts_50_requests_fast_and_publishes_them_when_back(tmp_path):
    from coachup.settings import load_settings
    from coachup.store import outbox
    from tests.conftest import TEST_HASH_SECRET
    from tests.support.broker import waiting_envelopes
    from tests.support.services import PrivateRedis
    from tests.support.wait import wait_until
    from web import create_app

    redis = PrivateRedis(appendonly=True)
    try:
        settings = load_settings(
            {
                "COACHUP_DATA_DIR": str(tmp_path),
                "COACHUP_BROKER_URL": redis.url,
                "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
                "COACHUP_ENV": "test",
                "COACHUP_OUTBOX_RETRY_S": "0.2",
            }
        )
        app = create_app(settings, configure_logs=False)
        client = app.test_client()
        redis.stop()
        statuses, slowest, job_ids = [], 0.0, []
        for i in range(50):
            started = time.monotonic()
            resp = client.post(
                "/messages/ingest",
                json={
                    "sessionId": f"out-{i}",
                    "messageId": "m1",
                    "role": "user",
                    "content": "hello there",
                    "end": True,
                },
            )
            slowest = max(slowest, time.monotonic() - started)
            statuses.append(resp.status_code)
            job_ids.append((resp.get_json() or {}).get("taskId"))
        store = app.extensions["coachup"].store
        waiting, _ = outbox.backlog(store)
        assert statuses == [200] * 50 and slowest < 2.0, (set(statuses), slowest)
        assert waiting == 50 and all(outbox.unpublished(store, j) for j in job_ids)
        redis.start()
        started = time.monotonic()
        registry = app.extensions["coachup_metrics"].registry

        def all_published() -> bool:
            relayed = registry.get_sample_value("coachup_outbox_publishes_total", {"status": "ok"}) or 0
            return outbox.backlog(store)[0] == 0 and relayed == 50

        wait_until(all_published, timeout=60, what="the relay to publish the 50 jobs")
        published = [e["headers"]["id"] for e in waiting_envelopes(app.extensions["coachup"].celery, ["assessments"])]
        assert sorted(published) == sorted(job_ids)  # each accepted job's message exactly once
        record(
            "fault",
            "4. broker down, 50 requests",
            requests=50,
            answered200=statuses.count(200),
            slowestS=round(slowest, 3),
            outboxWhileDown=waiting,
            publishedWhenBack=len(published),
            recoverS=round(time.monotonic() - started, 3),
        )
    finally:
        redis.close()


@pytest.mark.drill
@pytest.mark.parametrize("outage", ["within budget", "beyond budget"])
def test_database_down_while_the_worker_runs_jobs_loses_none(drill, outage):
    from coachup.store.deadletters import StoreDeadLetters

    pg = PrivatePostgres()
    try:
        budget = {
            "ASSESSMENTS_MAX_RETRIES": "8" if outage == "within budget" else "1",
            "ASSESSMENTS_BACKOFF_BASE_MS": "250",
            "ASSESSMENTS_BACKOFF_MAX_MS": "2000",
        }
        stack = drill(database_url=pg.url, **budget)
        jobs = stack.submit(20)
        # When the database goes down before the worker takes the jobs
        pg.stop()
        started = time.monotonic()
        worker = stack.worker("f5", concurrency=2, queues="assessments,deadletter")
        wait_until(
            lambda: "store_unavailable" in worker.log_text(),
            timeout=60,
            interval=0.2,
            what="the worker to meet the outage",
        )
        if outage == "beyond budget":
            wait_until(
                lambda: worker.events("assessments_job_failed"),
                timeout=60,
                interval=0.2,
                what="a job to outlast its retry budget",
            )
        pg.start()
        # Then every job finishes, or (beyond the budget) waits in the dead-letter queue: none gone
        letters = StoreDeadLetters(stack.store)
        wait_until(
            lambda: stack.tally(jobs)["done"] + letters.depth() == 20,
            timeout=120,
            interval=0.5,
            what="every job done or dead-lettered",
        )
        dead_lettered = letters.depth()
        if outage == "within budget":
            assert dead_lettered == 0
        else:
            assert dead_lettered > 0
            for letter in letters.list(limit=100):
                assert letter.error_type == "store_unavailable" and letter.task_id in jobs
            # And a redrive after the outage finishes each of them exactly once
            redrive = subprocess.run(
                [sys.executable, "-m", "coachup.cli", "dlq", "redrive"],
                env={**os.environ, **stack.env},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert redrive.returncode == 0, redrive.stdout + redrive.stderr
        wait_until(lambda: stack.tally(jobs)["done"] == 20, timeout=120, interval=0.5, what="every job done")
        t, o = stack.tally(jobs), stack.observed(jobs)
        assert (t["pending"], t["failed"], t["results"], o["jobsRun"]) == (0, 0, 20, 20), (t, o)
        record(
            "fault",
            f"5. database down ({outage})",
            **t,
            **o,
            deadLettered=dead_lettered,
            recoverS=round(time.monotonic() - started, 2),
        )
    finally:
        pg.close()


@pytest.mark.drill
def test_sigterm_during_a_long_task_is_a_warm_shutdown_that_finishes_it(drill, held_llm, tmp_path):
    stack = drill(database_url=f"sqlite:///{tmp_path / 'f6.sqlite'}", **_llm_env(held_llm))
    worker = stack.worker("f6", concurrency=1)
    [job] = stack.submit(1, content=HELD)
    wait_until(lambda: held_llm.calls_with("HOLDME") >= 1, timeout=30, what="the assessment to reach its LLM")
    started = time.monotonic()
    os.kill(worker.proc.pid, signal.SIGTERM)  # what an orchestrator sends to the main process
    wait_until(
        lambda: "arm shutdown" in worker.log_text() or "worker_shutting_down" in worker.log_text(),
        timeout=10,
        what="warm shutdown to begin",
    )
    held_llm.release.set()
    code = worker.proc.wait(timeout=30)
    t, o = stack.tally([job]), stack.observed([job])
    # the task the SIGTERM found running finished there: one run, completed
    assert code == 0 and (t["done"], t["results"], o["runs"], o["completedRuns"]) == (1, 1, 1, 1), (code, t, o)
    record(
        "fault",
        "6. SIGTERM during a long task",
        **t,
        **o,
        exitCode=code,
        shutdownS=round(time.monotonic() - started, 2),
    )
