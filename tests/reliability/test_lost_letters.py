"""Issue 16, finding 3: a dead letter whose record message the broker lost is recovered from the store's ledger.

kombu's Redis transport pops a message (BRPOP) before it records it as unacked, so a `deadletter` consumer
that dies between the two loses the message. Here the consumer that takes the letter is a process that pops
the `deadletter` queue's lists exactly as kombu does (one BRPOP over the queue's priority lists): it is
SIGSTOPped with its BRPOP pending, the letter is handed to it, then it is SIGKILLed. A real consumer's pop
happens inside its own event loop a few milliseconds before the unacked write, which a test cannot stop in
between; the stand-in leaves exactly what that instant leaves behind: the message in neither the list nor
the unacked hash.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis
from sqlalchemy import func, select

from coachup.store.deadletters import DeadLetterRow, StoreDeadLetters
from tests.support.fake_openai import ScriptedOpenAI
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess

from .harness import UNACKED, DrillStack
from .record import record

pytestmark = pytest.mark.drill

REJECTED = "REJECTME: I walked the board through the hiring plan and answered each of their questions about the budget."
# kombu's Redis keys of one queue: the list itself and its priority lists (priority_steps 3, 6, 9)
DEADLETTER_LISTS = ["deadletter", "deadletter\x06\x163", "deadletter\x06\x166", "deadletter\x06\x169"]
POPPER = """
import sys, time, redis
client = redis.Redis.from_url(sys.argv[1])
client.brpop(sys.argv[2:], 0)
time.sleep(3600)
"""


@pytest.fixture
def llm():
    fake = ScriptedOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def stack(tmp_path, llm):
    s = DrillStack(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'letters.sqlite'}",
        AI_PROVIDER="openai",
        OPENAI_API_KEY="sk-test-not-a-real-key-000",
        OPENAI_BASE_URL=llm.base_url,
        COACHUP_DEFAULT_SKILLS="clarity_eloquence",
        COACHUP_IDLE_SWEEP_S="1",
        # the test checks the letter is gone before the ledger's resend: 3 s was once not enough for the job's
        # failure to show in the SQLite store with the scheduler's 1 s sweeps writing to it (a quiet CI run)
        COACHUP_DEADLETTER_RESEND_AFTER_S="10",
    )
    yield s
    s.close()


def _blocked_pops(client) -> int:
    """Clients blocked in a BRPOP right now (CLIENT LIST: cmd=brpop, flag b)."""
    return sum(1 for c in client.client_list() if c.get("cmd") == "brpop" and "b" in c.get("flags", ""))


def _record_messages(client) -> int:
    """`deadletter.record` messages waiting in the queue's lists or held in the unacked hash."""
    waiting = [m for key in DEADLETTER_LISTS for m in client.lrange(key, 0, -1)]
    held = [json.loads(v)[0] for v in client.hvals(UNACKED)]
    return len(waiting) + sum(1 for m in held if m.get("headers", {}).get("task") == "deadletter.record")


def _stored(stack: DrillStack, job: str) -> int:
    with stack.store.session() as s:
        return s.scalar(select(func.count()).select_from(DeadLetterRow).where(DeadLetterRow.id.like(f"{job}.%"))) or 0


def test_a_letter_popped_by_a_consumer_that_dies_is_recovered_with_its_job(stack, tmp_path):
    client = redis.Redis.from_url(stack.redis.url)
    letters = StoreDeadLetters(stack.store)
    # Given a deadletter consumer with its BRPOP pending, SIGSTOPped, and no other consumer of that queue
    popper = subprocess.Popen([sys.executable, "-c", POPPER, stack.redis.url, *DEADLETTER_LISTS])
    try:
        wait_until(lambda: _blocked_pops(client) == 1, timeout=15, what="the consumer's BRPOP to be pending")
        os.kill(popper.pid, signal.SIGSTOP)
        # When an assessment dies for good (the provider answers 400) under a worker and the scheduler
        worker = stack.worker("a", concurrency=1)
        stack.beat()
        [job] = stack.submit(1, content=REJECTED, threads=1)
        wait_until(lambda: stack.store.get_job(job)["status"] == "failed", timeout=60, what="the job to fail")
        # and its letter is handed to the stopped consumer, which is then killed
        wait_until(lambda: _blocked_pops(client) == 0, timeout=10, what="the letter to be popped")
        os.kill(popper.pid, signal.SIGKILL)
        popper.wait(timeout=10)
        started = time.monotonic()
        assert (_record_messages(client), _stored(stack, job)) == (0, 0)  # the message is gone, nothing recorded
    finally:
        if popper.poll() is None:
            popper.kill()
            popper.wait()
    # Then a new deadletter consumer records the letter the sweep published again from the ledger
    consumer = stack.worker("d", concurrency=1, queues="deadletter")
    wait_until(lambda: _stored(stack, job) == 1, timeout=60, interval=0.2, what="the letter to be recorded")
    recovered_s = round(time.monotonic() - started, 2)
    wait_until(lambda: letters.pending() == 0, timeout=10, what="the ledger marker to be dropped")
    [letter] = letters.list(limit=10)
    assert letter.task_id == job and letter.reason == "permanent"
    assert stack.store.get_job(job)["status"] == "failed"
    resent = worker.events("dead_letter_resent")
    assert resent and all(e["deadLetterId"] == letter.id for e in resent)
    assert len(consumer.events("task_dead_lettered")) == 1  # recorded (and counted) once, however often resent
    # And the job itself comes back: a redrive once the provider accepts the text runs it to one result
    worker.stop()
    fixed = WorkerProcess(
        {**stack.env, "AI_PROVIDER": "heuristic"}, tmp_path / "b.log", name="b", queues="assessments", concurrency=1
    )
    stack.workers.append(fixed)
    fixed.wait_ready()
    redrive = subprocess.run(
        [sys.executable, "-m", "coachup.cli", "dlq", "redrive", "--include-permanent"],  # the provider is fixed now
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert redrive.returncode == 0, redrive.stdout + redrive.stderr
    wait_until(
        lambda: stack.tally([job])["done"] == 1,
        timeout=60,
        interval=0.2,
        what=f"the redriven job to finish ({redrive.stdout.strip()}; {stack.broker_state([job])})",
    )
    t = stack.tally([job])
    assert (t["done"], t["results"], letters.depth(), letters.pending()) == (1, 1, 0, 0), t
    record(
        "fault",
        "15. deadletter consumer SIGSTOPped with its BRPOP pending, then SIGKILLed",
        **t,
        **stack.observed([job]),
        resent=len(resent),
        letterRecoveredS=recovered_s,
    )
    client.close()
