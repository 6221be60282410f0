"""An SQS stack for tests: bootstrapped queues on the moto server, worker subprocesses, the API in-process."""

from __future__ import annotations

import base64
import json

from coachup.settings import load_settings
from coachup.sqs.admin import bootstrap, sqs_client
from coachup.sqs.names import sqs_queues

from .moto import sqs_stack_env
from .wait import wait_until
from .worker import WorkerProcess

__all__ = ["SqsStack", "dlq_messages", "dlq_message_for"]


class SqsStack:
    """Queues bootstrapped under a fresh prefix, `n_workers` worker subprocesses, and the API in-process."""

    def __init__(self, tmp_path_factory, moto, name: str, n_workers: int, *, start: bool = True, **extra: str) -> None:
        from tests.conftest import TEST_HASH_SECRET

        self.data_dir = tmp_path_factory.mktemp(f"sqs-{name}")
        self.env = {
            "COACHUP_ENV": "test",
            "COACHUP_DATA_DIR": str(self.data_dir),
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "ASSESSMENTS_BACKOFF_BASE_MS": "50",
            "COACHUP_WORKER_METRICS_PORT": "0",  # several workers per host: no shared 9540
            **sqs_stack_env(moto, name),
            **extra,
        }
        self.settings = load_settings(self.env)
        bootstrap(self.settings)
        from coachup.store import create_store
        from web import create_app

        create_store(self.settings.database_url)
        self.name, self.n_workers, self.workers = name, n_workers, []
        if start:
            self.start_workers()
        self.flask = create_app(self.settings, configure_logs=False)
        self.client = self.flask.test_client()
        self.runtime = self.flask.extensions["coachup"]

    def start_workers(self) -> None:
        """Start the workers (once) and wait until each is ready."""
        if self.workers:
            return
        self.workers = [
            WorkerProcess(self.env, self.data_dir / f"w{i}.log", name=f"t-{self.name}-{i}")
            for i in range(self.n_workers)
        ]
        for w in self.workers:
            w.wait_ready()

    def events(self, name: str) -> list[dict]:
        return [e for w in self.workers for e in w.events(name)]

    def run(self, session_id: str, text: str, request_id: str | None = None) -> dict:
        headers = {"x-request-id": request_id} if request_id else {}
        resp = self.client.post(
            "/assessments/run",
            headers=headers,
            json={"sessionId": session_id, "transcript": [{"role": "user", "content": text}]},
        )
        assert resp.status_code == 202, resp.get_json()
        return resp.get_json()

    def job(self, task_id: str) -> dict:
        return self.client.get(f"/api/v1/jobs/{task_id}").get_json()

    def stop(self) -> None:
        for w in self.workers:
            w.stop()


def dlq_messages(settings, logical: str = "assessments") -> list[dict]:
    q = next(q for q in sqs_queues(settings) if q.logical == logical)
    client = sqs_client(settings)
    url = client.get_queue_url(QueueName=q.dlq)["QueueUrl"]
    out = client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageSystemAttributeNames=["All"]
    ).get("Messages", [])
    for m in out:
        m["decoded"] = json.loads(base64.b64decode(m["Body"]))
    return out


def dlq_message_for(settings, task_id: str):
    def probe():
        return next((m for m in dlq_messages(settings) if m["decoded"]["headers"]["id"] == task_id), None)

    return wait_until(probe, timeout=90, interval=0.5, what=f"task {task_id} in the DLQ")
