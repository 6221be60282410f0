"""Delivery on SQS with real worker subprocesses against the moto server.

FIFO order within a session under two concurrent workers, SQS's own dedup of a double submit, a retry that
keeps its FIFO group, and failing tasks that reach the queue's DLQ through its RedrivePolicy without loss.
moto is slow (~13 tasks/s): the tests are few and their waits generous.
"""

from __future__ import annotations

import itertools
import json
import uuid

import pytest

from coachup.sqs.admin import depths, sqs_client
from tests.support.services import refused_port
from tests.support.sqs_stack import SqsStack, dlq_message_for
from tests.support.wait import wait_until

CRISP = [
    "I ran the quarterly review on Monday.",
    "Revenue grew eight percent and churn fell to two percent.",
    "We hired three engineers for the platform team.",
    "Next quarter I will focus on onboarding.",
]


@pytest.fixture(scope="module")
def fifo_pair(tmp_path_factory, moto_sqs):
    """Two workers (-c 2 each) on one set of queues, heuristic assessor; started by the first test's call."""
    stack = SqsStack(tmp_path_factory, moto_sqs, "fifo", 2, start=False)
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def failing(tmp_path_factory, moto_sqs):
    """One worker whose LLM endpoint refuses connections: every assessment fails retryably."""
    stack = SqsStack(
        tmp_path_factory,
        moto_sqs,
        "fail",
        1,
        AI_PROVIDER="openai",
        OPENAI_API_KEY="sk-test-not-a-real-key-000",
        OPENAI_BASE_URL=f"http://127.0.0.1:{refused_port()}/v1",
        ASSESSMENTS_MAX_RETRIES="1",
        COACHUP_SQS_MAX_RECEIVE_COUNT="2",
    )
    yield stack
    stack.stop()


def test_one_sessions_jobs_run_in_submit_order_under_two_workers(fifo_pair):
    # Given two sessions, each submitting five groups in a row
    session, other = "fifo-" + uuid.uuid4().hex[:6], "other-" + uuid.uuid4().hex[:6]
    request_ids, task_ids = [], []
    for i in range(5):
        rid = str(uuid.uuid4())
        request_ids.append(rid)
        task_ids.append(fifo_pair.run(session, CRISP[i % 4], rid)["taskId"])
        task_ids.append(fifo_pair.run(other, CRISP[(i + 1) % 4])["taskId"])

    # When both workers start on the full queue (so a receive could return several messages of one group)
    fifo_pair.start_workers()
    wait_until(
        lambda: all(fifo_pair.job(t)["status"] == "done" for t in task_ids),
        timeout=120,
        interval=0.5,
        what="all ten jobs done",
    )

    # Then the session's jobs started in submit order, each only after the previous one completed
    def first(event: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in fifo_pair.events(event):
            if e.get("requestId") in request_ids:
                out.setdefault(e["requestId"], e["ts"])
        return out

    started, completed = first("assessments_dequeue"), first("assessments_job_complete")
    assert set(started) == set(request_ids) == set(completed)
    assert sorted(request_ids, key=lambda r: started[r]) == request_ids
    for before, after in itertools.pairwise(request_ids):
        assert started[after] >= completed[before], (before, after)
    assert all(session not in json.dumps(e) for e in fifo_pair.events(None))


def test_a_double_submit_of_one_group_is_assessed_once(fifo_pair):
    """A second job for a group already assessed, published under the group's FIFO deduplication id, never runs
    an assessment. Two layers can drop it: SQS (same MessageDeduplicationId within 5 minutes) and the worker
    (the group already has its result). Since issue 16 the store refuses a second *active* job of one group, so
    the twin can only be written once the first has finished; moto forgets a deduplication id as soon as its
    message is deleted (real SQS keeps it 5 minutes), so here the worker's layer is what is exercised. What is
    counted is the work done: assessments scored under the twin's task id, and results stored for the group."""
    from coachup.jobs import JobRef, job_kind
    from workers.enqueue import ASSESS_TASK, publish

    fifo_pair.start_workers()
    rt, store = fifo_pair.runtime, fifo_pair.runtime.store
    session = "dedup-" + uuid.uuid4().hex[:6]
    # Given an assessed group
    first = fifo_pair.run(session, CRISP[0])
    wait_until(lambda: fifo_pair.job(first["taskId"])["status"] == "done", timeout=60, what="the first job done")
    # When the same (session, group) is published again under a new job id, then a later group follows
    twin = store.create_job("assessment", session_id=session, group_id=first["groupId"])
    options = rt.celery.coachup.broker.publish_options(
        job_kind("assessment"), rt.hasher, JobRef(session, first["groupId"])
    )
    publish(rt.celery, ASSESS_TASK, task_id=twin, args=[twin], headers={}, **options)
    later = fifo_pair.run(session, CRISP[1])

    # Then both real jobs finish and the queue is empty (nothing visible, nothing in flight) ...
    from coachup.sqs.admin import depths

    def settled():
        statuses = {fifo_pair.job(j)["status"] for j in (first["taskId"], later["taskId"])}
        queue = next(d for d in depths(fifo_pair.settings) if d.queue == "assessments")
        return statuses == {"done"} and (queue.visible, queue.in_flight) == (0, 0)

    wait_until(settled, timeout=60, interval=0.2, what="both jobs done and the queue empty")
    # ... the twin scored nothing and never counted an attempt, and the group holds exactly one result
    assert [e for e in fifo_pair.events("assessments_scores") if e.get("taskId") == twin] == []
    assert fifo_pair.job(twin)["attempts"] == 0
    assert store.count_assessments(session, first["groupId"]) == 1


def test_exhausted_retries_keep_the_group_and_land_in_the_dlq(failing):
    session = "retry-" + uuid.uuid4().hex[:6]
    rid = str(uuid.uuid4())
    # Given an assessment whose LLM is unreachable (retryable), 1 retry allowed, maxReceiveCount 2
    accepted = failing.run(session, " ".join(CRISP[:2]), rid)  # past the evidence minimum: it reaches the LLM

    # When its retries run out, then SQS moves it to the DLQ: the retry message, still in the session's group
    message = dlq_message_for(failing.settings, accepted["taskId"])
    hasher = failing.runtime.hasher
    attrs = message["Attributes"]
    assert attrs["MessageGroupId"] == hasher.session(session)
    assert attrs["MessageDeduplicationId"] == "d:" + hasher.digest(f"{session}:{accepted['groupId']}") + ":r1"
    assert message["decoded"]["headers"]["retries"] == 1

    # and it ran once, retried once, then failed on each of its maxReceiveCount receives; nothing is left behind
    mine = lambda name: [e for e in failing.events(name) if e.get("requestId") == rid]  # noqa: E731
    assert len(mine("assessments_retry")) == 1
    assert len(mine("assessments_job_failed")) == 2
    main = next(d for d in depths(failing.settings) if d.queue == "assessments")
    wait_until(
        lambda: next(d for d in depths(failing.settings) if d.queue == "assessments").in_flight == 0,
        timeout=30,
        what="nothing in flight",
    )
    assert main.visible == 0
    assert failing.job(accepted["taskId"])["status"] == "failed"


def test_a_permanent_failure_lands_in_the_dlq_after_max_receive_count_receives(failing):
    from workers.enqueue import ASSESS_TASK, publish

    rid, task_id = str(uuid.uuid4()), str(uuid.uuid4())
    # Given a job id the store does not know (NotFound: permanent, never retried)
    publish(
        failing.runtime.celery,
        ASSESS_TASK,
        task_id=task_id,
        args=["no-such-job"],
        headers={"requestId": rid},
        MessageGroupId="s:permanent",
        MessageDeduplicationId="d:" + task_id,
    )

    # Then it reaches the DLQ after exactly maxReceiveCount (2) failed runs, with no retry in between
    message = dlq_message_for(failing.settings, task_id)
    assert message["Attributes"]["MessageGroupId"] == "s:permanent"
    mine = lambda name: [e for e in failing.events(name) if e.get("requestId") == rid]  # noqa: E731
    assert len(mine("assessments_job_failed")) == 2 and mine("assessments_retry") == []


def test_workers_create_no_event_or_remote_control_queues(fifo_pair, moto_sqs):
    fifo_pair.start_workers()
    names = [u.rsplit("/", 1)[-1] for u in sqs_client(fifo_pair.settings).list_queues().get("QueueUrls", [])]
    assert names and not [n for n in names if "celeryev" in n or "pidbox" in n or "celery" in n]
