"""Issue 16, "poison at the transport never stops a worker", on SQS (the Redis drill: tests/reliability/test_poison.py).

Given one real worker consuming every queue on the moto server (`maxReceiveCount` 2), when each queue receives,
sent with boto3, a body that is not JSON, JSON that is not a kombu envelope, an envelope whose base64 body is
broken, and a well-formed envelope whose body is not JSON, then: the same worker process keeps consuming and
still runs a real job; each message ends, bytes untouched, in its queue's DLQ (`coachup dlq ls` shows it,
undecodable, and never redrives it)
after exactly `maxReceiveCount` receives, so it is neither dropped nor redelivered forever; each receive logs
`message_quarantined` (never the bytes) and `coachup_messages_quarantined_total` counts each message once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.request
import uuid
from collections import Counter, defaultdict

import pytest
from prometheus_client.parser import text_string_to_metric_families

from coachup.sqs.admin import depths, sqs_client
from coachup.sqs.deadletters import SqsDeadLetters
from coachup.sqs.names import sqs_queues
from tests.support.broker import celery_envelope
from tests.support.services import free_port
from tests.support.sqs_stack import SqsStack
from tests.support.wait import wait_until

MARKER = "PRIVATE-TRANSCRIPT-WORDS"  # in every poisoned message; must never reach a log line
MAX_RECEIVES = 2


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _envelope(queue: str, body: str, *, task_id: str | None = None) -> str:
    """A kombu SQS message body as Celery publishes it (base64 of the JSON envelope), `body` already encoded."""
    return _b64(json.dumps(celery_envelope(queue, body, task_id=task_id)))


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def _poisons(queue: str) -> list[tuple[str, str, str]]:
    """(reason, SQS body, digest of the bytes the worker reads) of each poisoned message for `queue`."""
    not_json = f"not json {MARKER} {{"
    not_envelope = _b64(json.dumps({"body": MARKER, "properties": [MARKER]}))
    broken_base64 = _envelope(queue, f"!!{MARKER}!! not base64")
    bad_body = f"[not json {MARKER}".encode()  # the consumer reads the envelope's decoded body
    return [
        ("envelope_not_json", not_json, _digest(not_json.encode())),
        ("envelope_invalid", not_envelope, _digest(not_envelope.encode())),
        ("body_encoding", broken_base64, _digest(broken_base64.encode())),
        ("body_undecodable", _envelope(queue, _b64(bad_body), task_id=str(uuid.uuid4())), _digest(bad_body)),
    ]


def _quarantined_counter(port: int) -> dict[tuple[str, str], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[tuple[str, str], float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "coachup_messages_quarantined_total":
                out[(sample.labels["queue"], sample.labels["reason"])] += sample.value
    return {key: value for key, value in out.items() if value}


def _drain(client, url: str) -> list[str]:
    """Every body in the queue at `url` (received with a long visibility timeout: they stay put)."""
    bodies: dict[str, str] = {}
    while True:
        got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get("Messages", [])
        new = [m for m in got if m["MessageId"] not in bodies]
        if not new:
            return list(bodies.values())
        bodies.update({m["MessageId"]: m["Body"] for m in new})


@pytest.fixture
def stack(tmp_path_factory, moto_sqs):
    port = free_port()
    s = SqsStack(
        tmp_path_factory,
        moto_sqs,
        "poison",
        1,
        COACHUP_SQS_MAX_RECEIVE_COUNT=str(MAX_RECEIVES),
        COACHUP_WORKER_METRICS_PORT=str(port),
        COACHUP_WORKER_METRICS_HOST="127.0.0.1",
    )
    s.metrics_port = port
    yield s
    s.stop()


def test_poisoned_messages_on_every_queue_end_in_the_dlq_and_never_stop_the_worker(stack):
    settings, client = stack.settings, sqs_client(stack.settings)
    [worker] = stack.workers
    pid = worker.proc.pid
    queues = sqs_queues(settings)
    sent: dict[str, list[tuple[str, str, str]]] = {}
    # When every queue gets the four poisoned messages, sent with boto3
    for q in queues:
        url = client.get_queue_url(QueueName=q.name)["QueueUrl"]
        sent[q.logical] = _poisons(q.logical)
        for _reason, body, _ in sent[q.logical]:
            fifo = {"MessageGroupId": uuid.uuid4().hex, "MessageDeduplicationId": uuid.uuid4().hex} if q.fifo else {}
            client.send_message(QueueUrl=url, MessageBody=body, **fifo)
    injected = sum(len(v) for v in sent.values())

    # Then every one of them leaves its queue for the queue's DLQ
    def settled():
        assert worker.proc.poll() is None, f"the worker exited ({worker.proc.returncode}):\n{worker.log_tail(40)}"
        rows = depths(settings)
        done = all(r.visible == 0 and r.in_flight == 0 and r.dead_letter == len(sent[r.queue]) for r in rows)
        return done or settled_rows.append(rows)

    settled_rows: list = []
    try:
        wait_until(settled, timeout=120, interval=0.5, what="every poisoned message in its queue's DLQ")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; queues at the end: {settled_rows[-1:]}") from None
    # ... where an operator sees them: `coachup dlq ls` lists each as undecodable (so never redriven)
    letters = SqsDeadLetters(settings).list()
    assert Counter(x.queue for x in letters) == Counter({q: len(v) for q, v in sent.items()})
    assert {(x.task, x.task_id) for x in letters} == {("(undecodable)", "")}
    for q in queues:  # ... their bytes untouched
        dlq = client.get_queue_url(QueueName=q.dlq)["QueueUrl"]
        assert sorted(_drain(client, dlq)) == sorted(body for _, body, _ in sent[q.logical]), q.logical

    # And each was received exactly maxReceiveCount times, each receive logged (digest, never the bytes)
    expected = {(queue, reason, digest) for queue, poisons in sent.items() for reason, _, digest in poisons}
    wait_until(
        lambda: len(worker.events("message_quarantined")) >= injected * MAX_RECEIVES,
        timeout=30,
        what="a log line per receive",
    )
    events = worker.events("message_quarantined")
    seen = Counter((e["queue"], e["reason"], e["digest"]) for e in events)
    assert seen == Counter({key: MAX_RECEIVES for key in expected})
    assert {e["keptIn"] for e in events} == {"dlq"}
    assert sorted(e["receiveCount"] for e in events) == sorted(list(range(1, MAX_RECEIVES + 1)) * injected)
    # counted once per message
    assert _quarantined_counter(stack.metrics_port) == {(q, reason): 1.0 for q, reason, _ in expected}

    # And the same process still runs a real job
    session = f"sess-{uuid.uuid4().hex[:8]}"
    accepted = stack.run(session, "I shipped the release on time and fixed the flaky tests.")
    wait_until(lambda: stack.job(accepted["taskId"])["status"] == "done", timeout=60, what="a job after the poison")
    assert worker.proc.poll() is None and worker.proc.pid == pid
    assert len(worker.events("message_quarantined")) == injected * MAX_RECEIVES  # none received again
    assert MARKER not in worker.log_text()
