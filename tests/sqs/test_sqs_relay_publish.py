"""The outbox relay's publish on SQS (moto): a job of a FIFO kind goes out in its session's message group with
its (session, group) deduplication id, and a republished copy (`attempt`) gets its own."""

from __future__ import annotations

from coachup.jobs import JobRef, job_kind
from coachup.sqs.admin import bootstrap, sqs_client
from coachup.sqs.names import sqs_queues


def _received(settings) -> list[dict]:
    queue = next(q for q in sqs_queues(settings) if q.logical == "assessments")
    client = sqs_client(settings)
    url = client.get_queue_url(QueueName=queue.name)["QueueUrl"]
    return client.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageSystemAttributeNames=["All"]
    ).get("Messages", [])


def test_a_relayed_job_carries_its_group_and_dedup_id_and_a_republished_copy_its_own(sqs_settings):
    from workers import create_celery
    from workers.publish import job_message
    from workers.relay import relay_pass

    bootstrap(sqs_settings)
    app = create_celery(sqs_settings)
    rt = app.coachup
    rt.store.create_job("assessment", session_id="sess-1", group_id="grp-1", request_id="req-1", params={})
    assert relay_pass(app, rt.store, rt.hasher).published == 1

    [message] = _received(sqs_settings)
    dedup = "d:" + rt.hasher.digest("sess-1:grp-1")
    assert message["Attributes"]["MessageGroupId"] == rt.hasher.session("sess-1")
    assert message["Attributes"]["MessageDeduplicationId"] == dedup  # no attempt: the job's own id

    kind, job = job_kind("assessment"), JobRef("sess-1", "grp-1", {})
    _, options = job_message(app, rt.hasher, kind, _ctx(), job, attempt="q2")
    assert options == {"MessageGroupId": rt.hasher.session("sess-1"), "MessageDeduplicationId": f"{dedup}:q2"}


def _ctx():
    from coachup.context import RequestContext

    return RequestContext.from_headers({"requestId": "req-1"})
