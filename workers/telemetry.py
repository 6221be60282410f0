"""Small pure helpers for `workers.signals`: bounded per-process bookkeeping and the provider span fields."""

from __future__ import annotations

from collections import OrderedDict

from coachup.errors import RetryableError
from coachup.redaction import scrub

__all__ = ["TaskBook", "FailedOnce", "LabelCache", "provider_span", "span_fields", "queue_of", "UNKNOWN_QUEUE"]

UNKNOWN_QUEUE = "unknown"
_MAX_TRACKED = 10_000  # task ids remembered per process; far above prefetch × concurrency


def queue_of(delivery_info: dict) -> str:
    """The queue a message came from (Celery's routing key), a bounded label."""
    return str(delivery_info.get("routing_key") or delivery_info.get("exchange") or UNKNOWN_QUEUE)


class TaskBook:
    """task id -> queue, bounded (oldest forgotten first)."""

    def __init__(self, limit: int = _MAX_TRACKED) -> None:
        self._queues: OrderedDict[str, str] = OrderedDict()
        self._limit = limit

    def remember(self, task_id: str, queue: str) -> str:
        if queue == UNKNOWN_QUEUE and task_id in self._queues:
            return self._queues[task_id]
        self._queues[task_id] = queue
        self._queues.move_to_end(task_id)
        while len(self._queues) > self._limit:
            self._queues.popitem(last=False)
        return queue

    def get(self, task_id: str | None) -> str:
        return self._queues.get(task_id or "", UNKNOWN_QUEUE)

    def forget(self, task_id: str) -> None:
        self._queues.pop(task_id, None)


class LabelCache:
    """Bound metric children by (family, labels), looked up once per process instead of once per task.

    prometheus_client's `labels()` takes a lock and re-validates the label values on every call; the bound
    child is reusable, and in multiprocess mode it re-keys its file itself after a fork. Bounded: label
    values are already bounded (task, queue, status), the limit only guards against a bug.
    """

    def __init__(self, metrics_source, limit: int = 4096) -> None:
        self._source = metrics_source  # zero-argument callable returning this process's `Metrics`
        self._children: dict[tuple, object] = {}
        self._limit = limit

    def __call__(self, family: str, *labels: str):
        key = (family, *labels)
        child = self._children.get(key)
        if child is None:
            child = getattr(self._source(), family).labels(*labels)
            if len(self._children) >= self._limit:
                self._children.clear()
            self._children[key] = child
        return child


class FailedOnce:
    """`first(task_id)` is True once per delivery of a task id: a hard time limit reports one failure twice.

    `forget(task_id)` when the task is delivered again (an SQS redelivery after a failure is a new attempt
    whose failure must count), so only the duplicate report of one run is dropped.
    """

    def __init__(self, limit: int = _MAX_TRACKED) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def first(self, task_id: str | None) -> bool:
        if task_id is None:
            return True
        if task_id in self._seen:
            return False
        self._seen[task_id] = None
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True

    def forget(self, task_id: str | None) -> None:
        if task_id is not None:
            self._seen.pop(task_id, None)


def span_fields(
    kind: str,
    provider: str,
    model: str,
    latency_ms: int,
    *,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost_cents: float = 0.0,
    error_type: str | None = None,
    error_message: str = "",
    retry: dict | None = None,
) -> dict:
    """The reference "Provider call" fields for a `provider.<kind>` event (chat, stt, tts)."""
    span = {
        "span": f"provider.{kind}",
        "provider": provider,
        "modelId": model,
        "latencyMs": latency_ms,
        "tokensIn": tokens_in,
        "tokensOut": tokens_out,
        "costCents": round(cost_cents, 4),
        "status": "error" if error_type else "ok",
    }
    if error_type:
        span["error"] = {"type": error_type, "message": scrub(error_message or error_type, limit=200)}
        if retry:
            span["retry"] = retry
    return span


def provider_span(outcome, provider: str, model: str, task, settings) -> dict:
    """Fields of the `provider.chat` span event for one skill outcome."""
    result = outcome.result
    retry = None
    exc = outcome.exception
    retries = getattr(getattr(task, "request", None), "retries", 0) or 0
    max_retries = getattr(task, "max_retries", None) or 0
    if outcome.error is not None and isinstance(exc, RetryableError) and retries < max_retries:
        # the job retries when every skill failed; nominal backoff (the countdown adds up to 25% jitter)
        nominal = min(settings.backoff_max_ms, settings.backoff_base_ms * 2**retries)
        retry = {"attempt": retries + 1, "max": max_retries, "backoffMs": nominal}
    span = span_fields(
        "chat",
        provider,
        model,
        outcome.latency_ms,
        tokens_in=int(getattr(result, "tokens_in", 0) or 0),
        tokens_out=int(getattr(result, "tokens_out", 0) or 0),
        cost_cents=float(getattr(result, "cost_usd", 0.0) or 0.0) * 100,
        error_type=outcome.error,
        error_message=getattr(exc, "message", ""),
        retry=retry,
    )
    span["skillId"] = outcome.skill.id
    return span
