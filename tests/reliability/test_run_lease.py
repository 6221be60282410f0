"""Issue 16, "never doubled": two copies of one job's message never both call the provider (the run lease).

A hung Redis can leave two copies of one message (redis-py's retry_on_timeout, kombu's publish retry, the relay
resending after its lease ran out). Here the second copy is published through the same path the relay and
the requeue sweep use (`workers.publish.publish`, same task id), to real worker processes on PostgreSQL, with a
scripted OpenAI-compatible provider that holds the first run's calls (`HOLDME`) so both copies are surely in
flight at once, and counts every call it receives.

1. Two copies at once to two workers: one runs, the other finds its live lease and is deferred (`duplicate_delivery`
   in its log); the provider receives one call per skill, once.
2. The lease holder is SIGKILLed while its provider call hangs: the deferred copy claims the job once the lease
   has run out and finishes it (the job is never dropped), no sooner than that.
"""

from __future__ import annotations

import pytest

from coachup.context import RequestContext, new_request_id
from coachup.jobs import JobRef, job_kind
from coachup.store import runs
from coachup.store.models import utcnow
from tests.support.fake_openai import ScriptedOpenAI
from tests.support.outbox import wait_published
from tests.support.services import PostgresDatabase
from tests.support.wait import wait_until

from .harness import DrillStack
from .record import record

pytestmark = pytest.mark.drill
HELD = "HOLDME: I ran the quarterly review and we shipped on time, then planned the next release with the team."


def _stack(tmp_path, llm: ScriptedOpenAI, pg: PostgresDatabase, skills: str) -> DrillStack:
    return DrillStack(
        tmp_path,
        database_url=pg.url,
        AI_PROVIDER="openai",
        OPENAI_API_KEY="sk-test-not-a-real-key-000",
        OPENAI_BASE_URL=llm.base_url,
        COACHUP_DEFAULT_SKILLS=skills,
        ASSESSMENT_SKILL_TIMEOUT_MS="14000",  # a held call outlasts a slow start of the other copy
    )


def _publish_copy(stack: DrillStack, job_id: str) -> None:
    """A second message of job `job_id`, exactly as a resending relay or the requeue sweep publishes it."""
    from workers.publish import job_message, publish

    job = stack.store.job_record(job_id)
    kind = job_kind("assessment")
    ctx = RequestContext(requestId=job.request_id or new_request_id())
    ref = JobRef(job.session_id, job.group_id, job.params or {})
    headers, options = job_message(stack.celery, stack.hasher, kind, ctx, ref, attempt="copy")
    publish(stack.celery, kind.task, task_id=job_id, args=[job_id], headers=headers, **options)


def _events(stack: DrillStack, name: str, job_id: str, **match) -> list[dict]:
    return [
        e
        for w in stack.workers
        for e in w.events(name)
        if e.get("taskId") == job_id and all(e.get(k) == v for k, v in match.items())
    ]


def test_two_copies_of_one_job_at_once_call_the_provider_once(tmp_path):
    pg = PostgresDatabase()
    skills = "clarity_eloquence,conciseness"
    llm = ScriptedOpenAI(hold_calls=2).start()  # the first run's calls wait until both copies are in flight
    stack = _stack(tmp_path, llm, pg, skills)
    try:
        # Given two worker processes, idle
        stack.worker("a", concurrency=1)
        stack.worker("b", concurrency=1)
        # When one job's message is published twice at once
        [job] = stack.submit(1, content=HELD, threads=1)
        wait_published(stack.store)
        _publish_copy(stack, job)
        # Then one copy holds the run (its provider call hangs) and the other is deferred, not run
        wait_until(
            lambda: _events(stack, "duplicate_delivery", job, outcome="deferred"),
            timeout=60,
            what=f"the second copy to be deferred ({len(llm.requests)} provider calls; {stack.broker_state([job])})",
        )
        llm.release.set()
        wait_until(lambda: stack.tally([job])["done"] == 1, timeout=60, what="the job to finish")
        # and the deferred copy, delivered again, finds the job done and calls nothing
        wait_until(
            lambda: len(_events(stack, "assessments_dequeue", job)) >= 3,
            timeout=60,
            what="the deferred copy's next delivery",
        )
        wait_until(lambda: stack.unacked() == 0, timeout=30, what="every copy acked")
        skill_count = len(skills.split(","))
        calls = len(llm.requests)
        assert calls == skill_count * 1, calls
        t = stack.tally([job])
        o = stack.observed([job])
        deferred = len(_events(stack, "duplicate_delivery", job, outcome="deferred"))
        assert (t["done"], t["results"], t["rerun"]) == (1, 1, 0), t  # one claim: one attempt counted
        record(
            "fault",
            "18. two copies of one job's message at once, two workers (run lease)",
            providerCalls=calls,
            deferred=deferred,
            **o,
            results=t["results"],
        )
    finally:
        stack.close()
        llm.stop()
        pg.drop()


def test_a_killed_lease_holder_on_this_host_is_taken_over_by_the_deferred_copy(tmp_path):
    pg = PostgresDatabase()
    llm = ScriptedOpenAI(hold_calls=1).start()  # the holder's one call hangs (until it is killed)
    stack = _stack(tmp_path, llm, pg, "clarity_eloquence")
    try:
        # Given two workers, one running a job whose provider call hangs (it holds the job's run lease)
        workers = [stack.worker("a", concurrency=1), stack.worker("b", concurrency=1)]
        [job] = stack.submit(1, content=HELD, threads=1)
        wait_until(lambda: llm.calls_with("HOLDME") == 1, timeout=60, what="the holder's provider call")
        token, lease_until = runs.lease_of(stack.store, job)
        assert token and lease_until
        [holder] = [w for w in workers if any(e.get("taskId") == job for e in w.events("assessments_dequeue"))]
        # and a second copy, taken by the other worker and deferred while the lease is live
        _publish_copy(stack, job)
        wait_until(
            lambda: _events(stack, "duplicate_delivery", job, outcome="deferred"),
            timeout=60,
            what=f"the second copy to be deferred ({stack.broker_state([job])})",
        )
        # When the holder is SIGKILLed (main process and its pool)
        holder.kill()
        # Then the deferred copy, on the same host, sees the holder's process gone and takes the lease over at once
        # (another host's copy would wait for the lease to run out: tests/store/test_runs.py)
        wait_until(
            lambda: stack.tally([job])["done"] == 1,
            timeout=(lease_until - utcnow()).total_seconds() + 90,
            interval=0.5,
            what=f"the job to finish after the holder died ({stack.broker_state([job])})",
        )
        done_at = stack.store.job_record(job).updated_at
        done_at = done_at if done_at.tzinfo else done_at.replace(tzinfo=lease_until.tzinfo)
        assert done_at < lease_until, (done_at, lease_until)  # taken over, not waited out
        assert _events(stack, "run_lease_taken_over", job), "no run_lease_taken_over event"
        t = stack.tally([job])
        calls = len(llm.requests)
        assert (t["done"], t["results"], calls) == (1, 1, 2), (t, calls)  # the dead holder's call and the rerun's
        deferred = len(_events(stack, "duplicate_delivery", job, outcome="deferred"))
        record(
            "fault",
            "19. run-lease holder SIGKILLed mid provider call, a deferred copy waiting (run lease)",
            providerCalls=calls,
            deferred=deferred,
            **stack.observed([job]),
            results=t["results"],
            doneBeforeLeaseEndS=round((lease_until - done_at).total_seconds(), 1),
        )
    finally:
        stack.close()
        llm.stop()
        pg.drop()
