"""The metrics module: every reference family declared once with bounded labels, helpers that record what
they say, the JSON view, and queue depth read from each broker (real Redis, files, moto's SQS server)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coachup.metrics import Metrics, as_json
from tests.observability.promtext import value
from tests.support.services import free_port, redis_db, redis_url

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_NAMES = {  # exported name -> labels, as sections 2 and 7 of the reference name them
    "coachup_assessment_job_seconds": {"rubric_version"},
    "coachup_assessments_enqueue_latency_seconds": set(),
    "coachup_assessments_retries_total": set(),
    "coachup_assessments_jobs_total": {"status"},
    "coachup_assessments_queue_depth": set(),
    "coachup_assessment_skill_seconds": {"provider", "model", "rubric_version"},
    "coachup_assessment_skill_errors_total": {"provider", "model", "reason"},
    "coachup_sqs_send_seconds": set(),
    "coachup_sqs_receive_seconds": set(),
    "coachup_sqs_delete_seconds": set(),
    "coachup_sqs_change_visibility_seconds": set(),
    "coachup_sqs_messages_enqueued_total": {"status"},
    "coachup_sqs_messages_polled_total": {"outcome"},
    "coachup_sqs_messages_deleted_total": {"status"},
    "coachup_sqs_visibility_changes_total": {"status"},
    "coachup_deadletters_total": {"task", "reason"},
}
_FORBIDDEN_LABELS = {"user", "user_id", "session", "session_id", "request_id", "group_id", "message"}


def _families(metrics: Metrics) -> dict[str, set[str]]:
    out = {}
    for collector in list(metrics.registry._collector_to_names):  # every declared family
        name = collector._name + ("_total" if collector._type == "counter" else "")
        out[name] = set(collector._labelnames)
    return out


def test_every_reference_metric_is_declared_with_its_labels():
    families = _families(Metrics())
    for name, labels in REFERENCE_NAMES.items():
        assert families.get(name) == labels, name
    for name, labels in families.items():
        assert name.startswith("coachup_") and not labels & _FORBIDDEN_LABELS, name


def test_the_docs_table_names_only_exported_metrics():
    doc = (ROOT / "docs" / "observability.md").read_text()
    exported = set(re.findall(r"`(coachup_[a-z_]+)(?:\{[^`]*\})?`", doc))
    families = _families(Metrics())
    suffixes = ("_bucket", "_count", "_sum")
    unknown = {
        n
        for n in exported
        if n not in families and not any(n.endswith(s) and n[: -len(s)] in families for s in suffixes)
    }
    assert exported and not unknown
    assert set(families) <= exported, set(families) - exported  # and every family is documented


def test_helpers_record_what_they_say():
    m = Metrics()
    m.observe_sqs_call("send", 0.01, True)
    m.observe_sqs_call("send", 0.02, False)
    m.observe_sqs_call("receive", 0.5, True, messages=3)
    m.observe_sqs_call("receive", 20.0, True, messages=0)
    m.observe_sqs_call("delete", 0.01, True)
    m.observe_sqs_call("change_visibility", 0.01, False)
    m.observe_provider_call("stt", "deepgram", "nova-2", 0.8, error="timeout")
    m.observe_provider_call("chat", "openai", "gpt-4o-mini", 0.7, tokens_in=1184, tokens_out=362, cost_cents=2.1)
    m.observe_audio(provider="mock", bytes_in=524288, bytes_out=1000)
    m.observe_upload("s3", 1000)
    m.record_deadletter("assessments.run", "upstream_rejected")
    m.observe_http("POST /messages/ingest", "POST", 503, 0.004)
    from prometheus_client import generate_latest

    text = generate_latest(m.registry).decode()
    assert value(text, "coachup_sqs_messages_enqueued_total", status="ok") == 1
    assert value(text, "coachup_sqs_messages_enqueued_total", status="error") == 1
    assert value(text, "coachup_sqs_messages_polled_total", outcome="message") == 3
    assert value(text, "coachup_sqs_messages_polled_total", outcome="empty") == 1
    assert value(text, "coachup_sqs_receive_seconds_count") == 2
    assert value(text, "coachup_sqs_visibility_changes_total", status="error") == 1
    assert value(text, "coachup_provider_errors_total", kind="stt", provider="deepgram", reason="timeout") == 1
    assert value(text, "coachup_provider_tokens_in_total", provider="openai") == 1184
    assert value(text, "coachup_provider_cost_cents_total", model="gpt-4o-mini") == pytest.approx(2.1)
    assert value(text, "coachup_audio_bytes_in_total", provider="mock") == 524288
    assert value(text, "coachup_storage_bytes_uploaded_total", storage="s3") == 1000
    assert value(text, "coachup_deadletters_total", task="assessments.run", reason="upstream_rejected") == 1
    assert value(text, "coachup_http_request_errors_total", status="503") == 1
    body = as_json(m.registry)
    assert body["coachup_deadletters"]["type"] == "counter"
    assert body["coachup_deadletters"]["samples"][0]["labels"] == {
        "task": "assessments.run",
        "reason": "upstream_rejected",
    }


def test_redis_depth_sums_priority_lists_and_counts_unacked_per_queue():
    import json

    import redis

    from workers.brokers.redis import redis_counts

    url = redis_url(redis_db("observability-scratch"))
    client = redis.Redis.from_url(url)
    client.lpush("deadletter", "a", "b")
    client.lpush("assessments", "c")
    client.lpush("assessments\x06\x163", "d")  # kombu's priority-3 list of the same queue
    client.hset("unacked", "tag", json.dumps([{"headers": {"id": "j1"}}, "assessments", "assessments"]))
    client.hset("unacked", "junk", "msg")  # not a kombu entry: skipped, never a crash
    depths, in_flight = redis_counts(client, ["assessments", "stt", "deadletter"])
    assert depths == {"assessments": 2, "stt": 0, "deadletter": 2}
    assert in_flight == {"assessments": 1, "stt": 0, "deadletter": 0}
    client.flushdb()


def test_sqs_depth_reads_visible_and_in_flight_counts(monkeypatch, tmp_path):
    # Given moto's SQS server with the configured queues (real names, a non-default region), one of three
    # messages taken from the stt queue
    from moto.server import ThreadedMotoServer

    from coachup.settings import load_settings
    from coachup.sqs.admin import bootstrap, depths, sqs_client

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        settings = load_settings(
            {
                "COACHUP_DATA_DIR": str(tmp_path),
                "COACHUP_BROKER_URL": "sqs://",
                "AWS_REGION": "eu-west-1",
                "AWS_ENDPOINT_URL_SQS": f"http://127.0.0.1:{port}",
                "COACHUP_SQS_QUEUE_PREFIX": "obs-",
            }
        )
        bootstrap(settings)
        client = sqs_client(settings)
        url = client.get_queue_url(QueueName="obs-coach-up-stt")["QueueUrl"]
        for _ in range(3):
            client.send_message(QueueUrl=url, MessageBody="{}")
        client.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)
        # Then the depths come from ApproximateNumberOfMessages(+NotVisible), by logical queue
        rows = {d.queue: d for d in depths(settings, client)}
        assert (rows["stt"].visible, rows["stt"].in_flight, rows["stt"].dead_letter) == (2, 1, 0)
        assert (rows["assessments"].visible, rows["assessments"].in_flight) == (0, 0)
        assert rows["stt"].broker_name == "obs-coach-up-stt"
    finally:
        server.stop()
