"""Serialization: a pickle message put on a queue is refused by the worker, never unpickled (so never run)."""

from __future__ import annotations

import os
import pickle
import uuid

from tests.support.wait import wait_until

from .harness import DrillStack
from .record import record


class _Payload:
    """Unpickling this creates `path`: the proof that a pickle was executed."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_pickle_message_is_rejected_not_executed(tmp_path):
    stack = DrillStack(tmp_path / "stack", database_url=f"sqlite:///{tmp_path / 'ser.sqlite'}")
    try:
        worker = stack.worker("ser", concurrency=1)
        marker = tmp_path / "pwned"
        task_id = str(uuid.uuid4())
        body = pickle.dumps(((_Payload(str(marker)),), {}, {}), protocol=2)
        with stack.celery.connection_for_write() as conn:
            producer = conn.Producer()
            producer.publish(
                body,
                exchange="assessments",
                routing_key="assessments",
                serializer=None,
                content_type="application/x-python-serialize",
                content_encoding="binary",
                headers={
                    "lang": "py",
                    "task": "assessments.run",
                    "id": task_id,
                    "argsrepr": "",
                    "kwargsrepr": "",
                    "retries": 0,
                },
            )
        # Then the worker refuses the content type, stays up, and consumes the next job normally
        wait_until(
            lambda: "disallowed" in worker.log_text().lower() or "refusing" in worker.log_text().lower(),
            timeout=30,
            interval=0.1,
            what="the worker to refuse the pickle",
        )
        [job] = stack.submit(1)
        wait_until(lambda: stack.tally([job])["done"] == 1, timeout=30, interval=0.1, what="a normal job after it")
        assert not marker.exists() and worker.proc.poll() is None
        assert stack.unacked() == 0
        record(
            "attack",
            "pickle message on the assessments queue",
            executed=int(marker.exists()),
            workerAlive=int(worker.proc.poll() is None),
            nextJobDone=stack.tally([job])["done"],
        )
    finally:
        stack.close()
