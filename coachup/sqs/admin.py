"""SQS administration with boto3: create every queue with its DLQ (`bootstrap`), read URLs and depths.

IAM permissions: `bootstrap` needs sqs:GetQueueUrl, sqs:CreateQueue, sqs:GetQueueAttributes and
sqs:SetQueueAttributes on the queues; `depths` needs sqs:GetQueueUrl and sqs:GetQueueAttributes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from coachup.queues import QueueDepth

from .names import SqsQueue, sqs_queues

__all__ = ["ping", "sqs_client", "bootstrap", "BootstrapLine", "queue_urls", "QueueDepth", "depths", "QueuesMissing"]

# each SQS call answers in milliseconds; a hung endpoint must not hang a CLI or a worker start for minutes
_CLIENT_CONFIG = {"connect_timeout": 5, "read_timeout": 10, "retries": {"max_attempts": 3, "mode": "standard"}}


class QueuesMissing(RuntimeError):
    """A queue the configuration names does not exist on SQS (run `coachup sqs bootstrap`)."""


def sqs_client(settings, *, connect_timeout: float | None = None, attempts: int | None = None):
    """A boto3 SQS client for `settings` (region, endpoint); credentials from the usual AWS chain."""
    import boto3
    from botocore.config import Config

    config = dict(_CLIENT_CONFIG)
    if connect_timeout is not None:
        config["connect_timeout"] = connect_timeout
    if attempts is not None:
        config["retries"] = {"total_max_attempts": attempts, "mode": "standard"}
    kwargs = {"region_name": settings.aws_region, "config": Config(**config)}
    if settings.sqs_endpoint_url:
        kwargs["endpoint_url"] = settings.sqs_endpoint_url
    return boto3.session.Session().client("sqs", **kwargs)


def ping_client(settings):
    """The client a health check asks SQS with: one attempt, a 1 s connect timeout. Build it once and keep it
    (a boto3 client is thread-safe; building one reads botocore's service model, 0.1-0.4 s of CPU here)."""
    return sqs_client(settings, connect_timeout=1.0, attempts=1)


def ping(settings, client) -> None:
    """Raise unless SQS answers and the assessment queue exists (health checks), asked with `client` (from
    `ping_client`, kept by the caller)."""
    client.get_queue_url(QueueName=sqs_queues(settings)[0].name)


@dataclass(frozen=True)
class BootstrapLine:
    """What `bootstrap` did for one queue: `created`, `exists` or `updated` (attributes brought in line)."""

    name: str
    role: str  # queue | dlq
    action: str
    url: str


def _url(client, name: str) -> str | None:
    try:
        return client.get_queue_url(QueueName=name)["QueueUrl"]
    except client.exceptions.QueueDoesNotExist:
        return None


def _ensure(client, name: str, role: str, attributes: dict[str, str]) -> BootstrapLine:
    url = _url(client, name)
    if url is None:
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        return BootstrapLine(name, role, "created", url)
    current = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    wanted = {k: v for k, v in attributes.items() if k not in ("FifoQueue",)}
    differ = {k: v for k, v in wanted.items() if _normal(k, current.get(k)) != _normal(k, v)}
    if differ:
        client.set_queue_attributes(QueueUrl=url, Attributes=differ)
        return BootstrapLine(name, role, "updated", url)
    return BootstrapLine(name, role, "exists", url)


def _normal(key: str, value):
    if key == "RedrivePolicy" and value:
        policy = json.loads(value)
        return policy.get("deadLetterTargetArn"), int(policy.get("maxReceiveCount", 0))
    return value


def _attributes(q: SqsQueue, settings, *, dlq: bool) -> dict[str, str]:
    attrs = {"VisibilityTimeout": str(settings.visibility_timeout_s)}
    if dlq:
        attrs["MessageRetentionPeriod"] = str(14 * 24 * 3600)  # the SQS maximum: time to find and fix
    if q.fifo:
        attrs["FifoQueue"] = "true"
        attrs["ContentBasedDeduplication"] = "false"  # dedup ids are explicit: <session>:<group>, hashed
    return attrs


def bootstrap(settings, client=None) -> list[BootstrapLine]:
    """Create (idempotently) every queue and its DLQ, attach the DLQ by RedrivePolicy, align attributes."""
    client = client or sqs_client(settings)
    lines = []
    for q in sqs_queues(settings):
        dlq = _ensure(client, q.dlq, "dlq", _attributes(q, settings, dlq=True))
        arn = client.get_queue_attributes(QueueUrl=dlq.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attrs = _attributes(q, settings, dlq=False)
        attrs["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": arn, "maxReceiveCount": str(settings.sqs_max_receive_count)}
        )
        lines += [_ensure(client, q.name, "queue", attrs), dlq]
    return lines


def queue_urls(settings, client=None) -> dict[str, str]:
    """SQS name -> URL for every queue (not the DLQs); raises `QueuesMissing` naming the absent ones."""
    client = client or sqs_client(settings)
    urls, missing = {}, []
    for q in sqs_queues(settings):
        url = _url(client, q.name)
        if url is None:
            missing.append(q.name)
        else:
            urls[q.name] = url
    if missing:
        raise QueuesMissing(f"SQS queues missing: {', '.join(missing)}; run `coachup sqs bootstrap` first")
    return urls


_DEPTH_ATTRS = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def _counts(client, name: str) -> tuple[int, int] | None:
    url = _url(client, name)
    if url is None:
        return None
    a = client.get_queue_attributes(QueueUrl=url, AttributeNames=_DEPTH_ATTRS)["Attributes"]
    visible = int(a.get("ApproximateNumberOfMessages", 0)) + int(a.get("ApproximateNumberOfMessagesDelayed", 0))
    return visible, int(a.get("ApproximateNumberOfMessagesNotVisible", 0))


def depths(settings, client=None) -> list[QueueDepth]:
    """Depth of every queue and its DLQ (SQS's approximate counts; None for a queue that does not exist)."""
    client = client or sqs_client(settings)
    out = []
    for q in sqs_queues(settings):
        main, dead = _counts(client, q.name), _counts(client, q.dlq)
        out.append(
            QueueDepth(
                q.logical,
                q.name,
                main[0] if main else None,
                main[1] if main else None,
                (dead[0] + dead[1]) if dead else None,
            )
        )
    return out
