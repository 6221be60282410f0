"""Issue 16, finding 1: poison at the transport never stops a worker.

Given one real worker consuming every queue of a private Redis, when each queue receives an envelope that is
not JSON, an envelope whose base64 body is broken, and a well-formed envelope whose body is not JSON, then the
same worker process (same PID) keeps consuming and still runs real jobs afterwards; the first two are kept in
the quarantine list (raw bytes, never in a log line), the third becomes a dead letter in the store, and the
quarantine counter says how many.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import redis
from sqlalchemy import func, select

from coachup.jobs import worker_queues
from coachup.store.deadletters import DeadLetterRow
from tests.support.broker import celery_envelope
from tests.support.wait import wait_until
from workers.quarantine import QUARANTINE_KEY

from .harness import DrillStack
from .record import record

pytestmark = pytest.mark.drill
MARKER = "PRIVATE-TRANSCRIPT-WORDS"  # in every poisoned message; must never reach a log line


def _envelope(queue: str, body: str, *, task_id: str | None = None) -> bytes:
    """A kombu Redis envelope as Celery publishes it, with `body` (already encoded) as its body."""
    return json.dumps(celery_envelope(queue, body, task_id=task_id)).encode()


@pytest.fixture
def stack(tmp_path):
    s = DrillStack(tmp_path, database_url=f"sqlite:///{tmp_path / 'poison.sqlite'}")
    yield s
    s.close()


def test_poisoned_messages_on_every_queue_never_stop_the_worker(stack):
    queues = worker_queues()
    worker = stack.worker("poison", queues=",".join(queues), concurrency=1)
    pid = worker.proc.pid
    client = redis.Redis.from_url(stack.redis.url)
    letters = []
    # When every queue gets three poisoned messages
    for queue in queues:
        client.lpush(queue, f"not json {MARKER} {{".encode())
        client.lpush(queue, _envelope(queue, f"!!{MARKER}!! not base64"))
        task_id = str(uuid.uuid4())
        letters.append(task_id)
        bad_body = base64.b64encode(f"[not json {MARKER}".encode()).decode()
        client.lpush(queue, _envelope(queue, bad_body, task_id=task_id))
    # Then each is consumed: nothing left waiting, two per queue quarantined, one per queue dead-lettered
    wait_until(
        lambda: sum(client.llen(q) for q in queues) == 0 and client.llen(QUARANTINE_KEY) >= 3 * len(queues),
        timeout=30,
        what=f"every poisoned message consumed ({stack.broker_state()})",
    )

    def stored_letters() -> int:
        with stack.store.session() as s:
            return s.scalar(select(func.count()).select_from(DeadLetterRow)) or 0

    wait_until(lambda: stored_letters() >= len(queues), timeout=30, what="a dead letter per bad body")
    entries = [json.loads(e) for e in client.lrange(QUARANTINE_KEY, 0, -1)]
    reasons = sorted({e["reason"] for e in entries})
    assert reasons == ["body_encoding", "body_undecodable", "envelope_not_json"], reasons
    assert any(MARKER.encode() in base64.b64decode(e["raw"]) for e in entries)  # the bytes are kept
    # And the same process still runs real jobs
    jobs = stack.submit(3, threads=1)
    wait_until(
        lambda: stack.tally(jobs)["done"] == 3, timeout=45, what=f"jobs after poison ({stack.broker_state(jobs)})"
    )
    assert worker.proc.poll() is None and worker.proc.pid == pid
    quarantined = [e for e in worker.events("message_quarantined")]
    assert len(quarantined) == 3 * len(queues)
    assert MARKER not in worker.log_text()
    record(
        "attack",
        "poisoned broker messages",
        queues=len(queues),
        injected=3 * len(queues),
        quarantined=len(entries),
        deadLetters=stored_letters(),
        workerPidUnchanged=int(worker.proc.pid == pid and worker.proc.poll() is None),
        jobsAfter=stack.tally(jobs)["done"],
    )
    client.close()
