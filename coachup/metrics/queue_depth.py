"""Queue depth read from the broker itself, for every queue (dead-letter included).

- Redis: `LLEN` of the queue's list and its priority lists (kombu's `queue\\x06\\x16N` keys); in-flight is
  the size of kombu's `unacked` hash (all queues together, reported under `*`).
- Embedded filesystem broker: the `*.<queue>.msg` files waiting in the broker folder.
- SQS: `ApproximateNumberOfMessages` and `ApproximateNumberOfMessagesNotVisible` through
  `sqs_queue_depths`, given the queue URLs (the SQS transport's predefined queues).

`read_depths(settings, queues)` returns `({queue: waiting}, {queue: in_flight})`. Nothing here runs at import.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "read_depths",
    "priority_lists",
    "redis_queue_depths",
    "filesystem_queue_depths",
    "sqs_queue_depths",
    "write_snapshot",
    "read_snapshot",
    "SNAPSHOT_NAME",
]

_KOMBU_PRIORITY_SEP = "\x06\x16"
_KOMBU_PRIORITY_STEPS = (3, 6, 9)  # step 0 is the bare queue name
SNAPSHOT_NAME = "queue-depth.json"


def priority_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps for `queue`: the bare name (priority step 0), then one per step."""
    return [queue, *(f"{queue}{_KOMBU_PRIORITY_SEP}{step}" for step in _KOMBU_PRIORITY_STEPS)]


def redis_queue_depths(client, queues: Iterable[str]) -> tuple[dict[str, int], dict[str, int]]:
    """LLEN of each queue (all priority lists summed) and kombu's unacked hash size, in one pipeline."""
    queues = list(queues)
    pipe = client.pipeline()
    for q in queues:
        for key in priority_lists(q):
            pipe.llen(key)
    pipe.hlen("unacked")
    sizes = pipe.execute()
    per = 1 + len(_KOMBU_PRIORITY_STEPS)
    depths = {q: int(sum(sizes[i * per : (i + 1) * per])) for i, q in enumerate(queues)}
    return depths, {"*": int(sizes[-1])}


def filesystem_queue_depths(folder: Path, queues: Iterable[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Message files per queue in kombu's filesystem broker folder (`<ms>_<uuid>.<queue>.msg`)."""
    depths = {q: 0 for q in queues}
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return depths, {}
    for name in names:
        if name.endswith(".msg"):
            queue = name.partition(".")[2][:-4]
            if queue in depths:
                depths[queue] += 1
    return depths, {}


def sqs_queue_depths(client, queue_urls: Mapping[str, str]) -> tuple[dict[str, int], dict[str, int]]:
    """`get_queue_attributes` of each queue URL: (visible, not visible) message counts."""
    depths, in_flight = {}, {}
    for queue, url in queue_urls.items():
        attrs = client.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        depths[queue] = int(attrs.get("ApproximateNumberOfMessages", 0))
        in_flight[queue] = int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))
    return depths, in_flight


def _sqs_client_and_urls(settings, queues: Iterable[str]):
    """boto3 client for the broker URL's endpoint and each queue's URL (looked up by name)."""
    import boto3

    parts = urlsplit(settings.broker_url)
    endpoint = f"http://{parts.hostname}:{parts.port}" if parts.hostname and parts.port else None
    client = boto3.client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=parts.username or None,
        aws_secret_access_key=parts.password or None,
    )
    urls = {}
    for q in queues:
        try:
            urls[q] = client.get_queue_url(QueueName=q)["QueueUrl"]
        except client.exceptions.QueueDoesNotExist:
            continue
    return client, urls


def read_depths(settings, queues: Iterable[str], *, redis_factory: Callable | None = None):
    """Depth per queue on the configured broker: `({queue: waiting}, {queue: in_flight})`."""
    queues = list(queues)
    kind = settings.broker_kind
    if kind == "redis":
        import redis

        client = (redis_factory or redis.Redis.from_url)(
            settings.broker_url, socket_timeout=2, socket_connect_timeout=2
        )
        try:
            return redis_queue_depths(client, queues)
        finally:
            client.close()
    if kind == "filesystem":
        return filesystem_queue_depths(settings.broker_dir, queues)
    if kind == "sqs":
        client, urls = _sqs_client_and_urls(settings, queues)
        return sqs_queue_depths(client, urls)
    return {}, {}


def write_snapshot(folder: Path, depths: Mapping[str, int]) -> None:
    """Publish the latest sample for prefork children (they read it instead of asking the broker)."""
    tmp = folder / f".{SNAPSHOT_NAME}.{os.getpid()}"
    tmp.write_text(json.dumps({"at": time.time(), "depths": dict(depths)}))
    os.replace(tmp, folder / SNAPSHOT_NAME)


def read_snapshot(folder: Path | None, queue: str, *, max_age_s: float = 300) -> int | None:
    """The last sampled depth of `queue`, or None when there is no recent sample."""
    if folder is None:
        return None
    try:
        data = json.loads((folder / SNAPSHOT_NAME).read_text())
    except (OSError, ValueError):
        return None
    if time.time() - float(data.get("at", 0)) > max_age_s:
        return None
    value = data.get("depths", {}).get(queue)
    return int(value) if isinstance(value, int) else None
