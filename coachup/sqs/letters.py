"""Turning a raw SQS dead-letter message (a kombu/Celery message) into a `DeadLetter`.

kombu's SQS transport sends each Celery message as base64 of a JSON envelope `{"body", "headers",
"properties", ...}`; the Celery headers (`task`, `id`, `retries`, and the custom safe headers such as
`requestId`, `traceparent`, `redriveCount`) are in `headers`, the arguments `[args, kwargs, embed]` in
`body` (base64 again when `properties.body_encoding` is `base64`). SQS moves that message to the DLQ
untouched, so the worker's error is not in it: the letter's error type is `unknown`.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from coachup.deadletters import DeadLetter, safe_headers

__all__ = ["letter_from_message", "decode_envelope", "UNKNOWN_ERROR", "MAX_RECEIVES_REASON"]

UNKNOWN_ERROR = "unknown"
#: SQS's RedrivePolicy moved the message after `maxReceiveCount` receives (failed or crashed runs)
MAX_RECEIVES_REASON = "max_receives"


def decode_envelope(body: str) -> dict:
    """The kombu envelope of an SQS message body (base64 JSON, or plain JSON); raises ValueError."""
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raw = body.encode()
    envelope = json.loads(raw)
    if not isinstance(envelope, dict):
        raise ValueError("not a kombu envelope")
    return envelope


def _arguments(envelope: dict) -> tuple[list, dict]:
    body = envelope.get("body")
    if isinstance(body, str):
        if (envelope.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        body = json.loads(body)
    if isinstance(body, list) and len(body) >= 2:  # Celery protocol 2: [args, kwargs, embed]
        return list(body[0] or []), dict(body[1] or {})
    return [], {}


def _iso_ms(ms) -> str:
    try:
        value = int(ms)
    except (TypeError, ValueError):
        return ""
    return datetime.fromtimestamp(value / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def letter_from_message(message: dict, queue: str, *, max_receive_count: int, max_redrives: int) -> DeadLetter:
    """The `DeadLetter` of one received DLQ `message` (boto3 `receive_message` item with `Attributes`).

    `queue` is the logical queue the DLQ serves. `id` is the SQS MessageId (stable across receives).
    `attempts` = the job's retries + `max_receive_count` (the RedrivePolicy moved it after exactly that
    many receives; the DLQ's own ApproximateReceiveCount also counts operators' peeks, so it is not used).
    Times: first failure = SentTimestamp (when this message was sent), last = its first receive, if later.
    A letter already redriven `max_redrives` times shows the reason `redrive_limit` (it is held).
    """
    attrs = message.get("Attributes") or {}
    try:
        envelope = decode_envelope(message.get("Body") or "")
        headers = envelope.get("headers") or {}
        args, kwargs = _arguments(envelope)
        task, task_id = str(headers.get("task") or UNKNOWN_ERROR), str(headers.get("id") or "")
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError):  # not a Celery message: shown, never redriven
        headers, args, kwargs, task, task_id = {}, [], {}, "(undecodable)", ""
    safe = safe_headers(headers)
    redrives = int(safe.get("redriveCount") or 0)
    sent = attrs.get("SentTimestamp")
    first_receive = attrs.get("ApproximateFirstReceiveTimestamp") or sent
    last = max(int(sent or 0), int(first_receive or 0)) or None
    return DeadLetter(
        id=message["MessageId"],
        task_id=task_id,
        task=task,
        queue=queue,
        reason="redrive_limit" if redrives >= max_redrives else MAX_RECEIVES_REASON,
        error_type=UNKNOWN_ERROR,
        error_message="",
        attempts=int(headers.get("retries") or 0) + max_receive_count,
        first_failure_at=_iso_ms(sent),
        last_failure_at=_iso_ms(last),
        args=args,
        kwargs=kwargs,
        headers=safe,
        group_id=attrs.get("MessageGroupId"),
        redrives=redrives,
    )
