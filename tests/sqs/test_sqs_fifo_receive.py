"""One message per receive on a FIFO queue, end to end: a session's jobs never run at the same time.

SQS (and moto) may return several messages of one FIFO group in a single receive; a worker with two pool
children would then run them at once. Here one session's jobs wait back to back in the queue (so a bulk
receive would take two of the same group) and each job's LLM call is held open for a while by a local
OpenAI-compatible server that counts how many calls are in flight at once.
"""

from __future__ import annotations

import itertools
import threading
import uuid

import pytest

from tests.support.fake_openai import ScriptedOpenAI
from tests.support.sqs_stack import SqsStack
from tests.support.wait import wait_until

TEXT = "I ran the quarterly review on Monday. Revenue grew eight percent and churn fell to two percent."
HOLD_S = 1.0  # how long each call stays open unless a second one arrives (then both answer at once)


class OverlapOpenAI(ScriptedOpenAI):
    """Answers like ScriptedOpenAI, after holding each call; `max_in_flight` is the most calls seen at once."""

    def __init__(self) -> None:
        super().__init__(hold_calls=0)
        self.in_flight = self.max_in_flight = self.calls = 0
        self._changed = threading.Condition()

    def _answer(self, prompt: str, payload: dict):
        with self._changed:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self.in_flight > 1, timeout=HOLD_S)
        try:
            return super()._answer(prompt, payload)
        finally:
            with self._changed:
                self.in_flight -= 1


@pytest.fixture(scope="module")
def llm():
    fake = OverlapOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def fifo_one(tmp_path_factory, moto_sqs, llm):
    """One worker with two pool children on its own queues, assessing through the overlap counter."""
    stack = SqsStack(
        tmp_path_factory,
        moto_sqs,
        "fifo1",
        1,
        start=False,
        AI_PROVIDER="openai",
        OPENAI_API_KEY="sk-test-not-a-real-key-fifo",
        OPENAI_BASE_URL=llm.base_url,
        COACHUP_DEFAULT_SKILLS="clarity_eloquence",
    )
    yield stack
    stack.stop()


def test_a_sessions_queued_jobs_never_run_at_once_on_one_two_child_worker(fifo_one, llm):
    # Given four jobs of one session queued back to back before any worker runs
    session = "fifo1-" + uuid.uuid4().hex[:6]
    request_ids = [str(uuid.uuid4()) for _ in range(4)]
    task_ids = [fifo_one.run(session, TEXT, rid)["taskId"] for rid in request_ids]

    # When one worker with two pool children starts on them
    fifo_one.start_workers()
    wait_until(
        lambda: all(fifo_one.job(t)["status"] == "done" for t in task_ids),
        timeout=120,
        interval=0.5,
        what="the four jobs done",
    )

    # Then the provider saw one call per job and never two at once
    assert llm.calls == 4
    assert llm.max_in_flight == 1

    # and the worker's own log shows each job starting after the previous one completed, in submit order
    def first(event: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in fifo_one.events(event):
            if e.get("requestId") in request_ids:
                out.setdefault(e["requestId"], e["ts"])
        return out

    started, completed = first("assessments_dequeue"), first("assessments_job_complete")
    assert sorted(request_ids, key=lambda r: started[r]) == request_ids
    for before, after in itertools.pairwise(request_ids):
        assert started[after] >= completed[before], (before, after)
