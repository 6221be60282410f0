"""Quarantine: broker messages no worker can read, kept (raw bytes) where an operator can look, never in a log.

Why: one undecodable message (an envelope that is not JSON, a body whose base64 is broken) used to raise out of
kombu's poll loop and end the worker's main process, and under `coachup run` every process with it; a body
Celery could not decode was acked with its raw text in a log line. Now each such message is moved here, a
counter and one log line (queue, reason, size and a keyed digest only) say so, and the worker goes on consuming.

The quarantine is one Redis list on the broker (`QUARANTINE_KEY`), newest first, capped at `MAX_KEPT` entries
(older ones are dropped: the counter still counts them). Each entry is JSON: `at`, `queue`, `reason`, `bytes`,
`digest` and `raw` (base64 of the bytes exactly as received). `coachup dlq quarantine` lists and purges it.

A broker with a native dead-letter queue (SQS) keeps no list: there the message stays in its queue, is made
visible again, and the queue's RedrivePolicy moves it, bytes untouched, to the queue's DLQ after
`maxReceiveCount` receives (`coachup dlq ls` shows it). The log line comes with every receive (`keptIn: dlq`,
`receiveCount`); the counter counts the message once, at its first receive.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from dataclasses import dataclass

from coachup.logs import log_event

__all__ = [
    "QUARANTINE_KEY",
    "MAX_KEPT",
    "Quarantined",
    "quarantine",
    "quarantined",
    "purge_quarantine",
    "REASONS",
    "bind_metrics",
    "bound_metrics",
    "receive_count",
    "envelope_problem",
]

QUARANTINE_KEY = "coachup.quarantine"
MAX_KEPT = 10_000  # a flood of garbage must not fill the broker's memory; the metric keeps counting
# bounded metric label values: where in the decoding the message failed
REASONS = ("envelope_not_json", "envelope_invalid", "body_encoding", "body_undecodable", "unknown_format")

log = logging.getLogger("coachup.worker")


@dataclass(frozen=True)
class Quarantined:
    """One quarantined message as `coachup dlq quarantine ls` shows it (`raw` only on request)."""

    at: str
    queue: str
    reason: str
    size: int
    digest: str
    raw: bytes

    def summary(self) -> dict:
        return {"at": self.at, "queue": self.queue, "reason": self.reason, "bytes": self.size, "digest": self.digest}


def _digest(raw: bytes) -> str:
    """A short content digest: lets an operator tell two entries apart without reading them (not a secret)."""
    return hashlib.sha256(raw).hexdigest()[:16]


def quarantine(
    client,
    queue: str,
    reason: str,
    raw: bytes | str,
    *,
    metrics=None,
    error_type: str = "",
    receive_count: int | None = None,
) -> None:
    """Keep `raw` in the quarantine list and say so (log line and counter); never raises.

    `error_type` (e.g. `ContentDisallowed` for a pickle) goes to the log line; never the error's message.
    `client` None: the broker keeps the message itself (SQS: its DLQ, see the module doc); only the log line
    and, at its first receive (`receive_count` None or 1), the counter.
    """
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    reason = reason if reason in REASONS else "unknown_format"
    entry = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "queue": queue,
        "reason": reason,
        "bytes": len(data),
        "digest": _digest(data),
        "raw": base64.b64encode(data).decode("ascii"),
    }
    kept = True
    try:
        if client is not None:
            pipe = client.pipeline()
            pipe.lpush(QUARANTINE_KEY, json.dumps(entry))
            pipe.ltrim(QUARANTINE_KEY, 0, MAX_KEPT - 1)
            pipe.execute()
    except Exception as exc:  # the broker went away mid-poll: the message is lost, but the worker lives
        kept = False
        log.warning(
            "quarantine write failed", extra={"event": "quarantine_error", "error": {"type": type(exc).__name__}}
        )
    where = {"keptIn": "quarantine"} if client is not None else {"keptIn": "dlq", "receiveCount": receive_count}
    log_event(
        log,
        "message_quarantined",
        logging.ERROR,
        queue=queue,
        reason=reason,
        bytes=len(data),
        digest=entry["digest"],
        kept=kept,
        error={"type": error_type or reason},
        **where,
    )
    if metrics is not None and (receive_count is None or receive_count <= 1):
        try:
            metrics.messages_quarantined_total.labels(queue=queue, reason=reason).inc()
        except Exception:  # observers never break work
            log.warning("quarantine metric failed", extra={"event": "observer_error"})


def receive_count(sqs_message) -> int | None:
    """SQS's `ApproximateReceiveCount` of a received message (kombu asks for it), or None."""
    try:
        return int(sqs_message["Attributes"]["ApproximateReceiveCount"])
    except (KeyError, TypeError, ValueError):
        return None


def envelope_problem(payload) -> str | None:
    """The quarantine reason when `payload` (a parsed envelope) is not what kombu's `Message` reads, else None."""
    if not isinstance(payload, dict) or not isinstance(payload.get("properties"), dict):
        return "envelope_invalid"
    props = payload["properties"]
    if not isinstance(props.get("delivery_tag"), str) or not isinstance(props.get("delivery_info") or {}, dict):
        return "envelope_invalid"
    if not isinstance(payload.get("headers") or {}, dict):
        return "envelope_invalid"
    return None


def quarantined(client, limit: int = 100) -> list[Quarantined]:
    """The newest `limit` quarantined messages (garbage in the list itself is skipped)."""
    out = []
    for raw in client.lrange(QUARANTINE_KEY, 0, max(limit, 1) - 1):
        try:
            doc = json.loads(raw)
            out.append(
                Quarantined(
                    at=doc["at"],
                    queue=doc["queue"],
                    reason=doc["reason"],
                    size=int(doc["bytes"]),
                    digest=doc["digest"],
                    raw=base64.b64decode(doc["raw"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return out


def purge_quarantine(client) -> int:
    """Drop every quarantined message; how many there were."""
    pipe = client.pipeline()
    pipe.llen(QUARANTINE_KEY)
    pipe.delete(QUARANTINE_KEY)
    count, _ = pipe.execute()
    return int(count)


_metrics_source = None


def bind_metrics(source) -> None:
    """`source()` gives this process's `Metrics` (the worker's consumer binds it; the channel has no app)."""
    global _metrics_source
    _metrics_source = source


def bound_metrics():
    """The bound `Metrics`, or None (never raises: a metric must not stop the poll loop)."""
    try:
        return _metrics_source() if _metrics_source is not None else None
    except Exception:
        return None
