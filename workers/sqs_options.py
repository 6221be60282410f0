"""What SQS changes in the Celery configuration and in the messages we publish.

- `celery_overrides`: the transport (logical names, observed calls), the region and endpoint, and failure
  handling that leaves a failed message in its queue so SQS's RedrivePolicy dead-letters it.
- `fifo_publish_options`: `MessageGroupId` = hashed session id (one session's jobs in order) and
  `MessageDeduplicationId` = hashed `<session>:<group>` (SQS itself drops a double submit).
- `fifo_retry_options`: a retry keeps its group (Celery's own retry would drop it) with a fresh dedup id.
"""

from __future__ import annotations

from coachup.sqs.names import sqs_queues

__all__ = ["celery_overrides", "fifo_publish_options", "fifo_retry_options"]

# seconds of one SQS long poll: short enough that a warm shutdown is quick, long enough to cost few calls
WAIT_TIME_S = 5


def celery_overrides(settings) -> dict:
    """Celery settings to merge over the common ones when the broker is SQS."""
    from .sqs_transport import TRANSPORT

    options = {
        "region": settings.aws_region,
        "visibility_timeout": settings.visibility_timeout_s,  # informative: each queue's own attribute governs
        "wait_time_seconds": WAIT_TIME_S,
        "coachup_queue_names": {q.logical: q.name for q in sqs_queues(settings)},
        # bounded calls: a publish to an unreachable SQS fails within the API's 503 budget (Celery's publish
        # retry policy adds one more); reads stay above the long poll of the blocking client
        "client-config": {
            "connect_timeout": settings.enqueue_timeout_s,
            "read_timeout": WAIT_TIME_S + 5,
            "retries": {"total_max_attempts": 2, "mode": "standard"},
        },
    }
    if settings.sqs_endpoint_url:
        options["endpoint_url"] = settings.sqs_endpoint_url.rstrip("/")
        options["is_secure"] = settings.sqs_endpoint_url.startswith("https")
    return {
        "broker_transport": TRANSPORT,
        "broker_transport_options": options,
        # a failed task's message is rejected, not deleted: SQS redelivers it and, after maxReceiveCount
        # receives, moves it to the queue's DLQ. Nothing is lost in between.
        "task_acks_on_failure": False,
        "task_acks_on_timeout": False,
        # SQS has no fanout: no remote control (pidbox) and no events (celeryev) queues
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
    }


def fifo_publish_options(settings, hasher, session_id: str, group_id: str) -> dict:
    """Publish options for one assessment job; empty unless the broker is SQS."""
    if settings.broker_kind != "sqs":
        return {}
    return {
        "MessageGroupId": hasher.session(session_id),
        "MessageDeduplicationId": "d:" + hasher.digest(f"{session_id}:{group_id}"),
    }


def fifo_retry_options(task) -> dict:
    """Options that keep a FIFO message's group on retry, with a dedup id unique to the attempt."""
    if task.app.coachup.settings.broker_kind != "sqs":
        return {}
    props = getattr(task.request, "properties", None) or {}
    group = props.get("MessageGroupId")
    if not group:
        return {}
    base = str(props.get("MessageDeduplicationId") or task.request.id).split(":r", 1)[0]
    # deterministic per attempt: a redelivered original that retries again is dropped by SQS, not doubled
    return {"MessageGroupId": group, "MessageDeduplicationId": f"{base}:r{task.request.retries + 1}"}
