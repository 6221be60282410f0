"""Drill: a worker whose pool child dies on every run of a task (a crash loop) still ends in the SQS DLQ."""

from __future__ import annotations

import os
import signal
import socket
import uuid

import pytest

from tests.support.sqs_stack import SqsStack, dlq_message_for
from tests.support.wait import wait_until
from tests.support.worker import pool_children


@pytest.fixture(scope="module")
def hanging_llm():
    """A TCP endpoint that accepts connections (kernel backlog) and never answers: a task waits on it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    sock.close()


@pytest.mark.drill
def test_a_crash_loop_reaches_the_dlq_too(tmp_path_factory, moto_sqs, hanging_llm):
    # Given a worker (-c 1) whose task hangs on its LLM, and maxReceiveCount 2
    stack = SqsStack(
        tmp_path_factory,
        moto_sqs,
        "crash",
        1,
        AI_PROVIDER="openai",
        OPENAI_API_KEY="sk-test-not-a-real-key-000",
        OPENAI_BASE_URL=hanging_llm,
        COACHUP_SQS_MAX_RECEIVE_COUNT="2",
    )
    try:
        rid = str(uuid.uuid4())
        # past the evidence minimum, so the task does reach (and hang on) the LLM
        text = "I ran the quarterly review on Monday and walked the board through revenue, churn and hiring."
        accepted = stack.run("crash-" + uuid.uuid4().hex[:6], text, rid)
        worker = stack.workers[0]

        # When the pool child is SIGKILLed each time it runs the task
        for attempt in (1, 2):
            wait_until(
                lambda attempt=attempt: (
                    len([e for e in worker.events("assessments_dequeue") if e.get("requestId") == rid]) >= attempt
                ),
                timeout=60,
                interval=0.2,
                what=f"attempt {attempt} to start",
            )
            for child in pool_children(worker.proc.pid):
                os.kill(child, signal.SIGKILL)

        # Then after maxReceiveCount receives SQS moves the message to the DLQ: not lost, not looping
        message = dlq_message_for(stack.settings, accepted["taskId"])
        assert message["decoded"]["headers"]["id"] == accepted["taskId"]
        assert worker.proc.poll() is None  # the worker itself survived and replaced its child
    finally:
        stack.stop()
