"""Amazon SQS: logical queues mapped to real ones, each with its own DLQ (RedrivePolicy), FIFO for assessments.

- Celery options: kombu's SQS transport adapted (`workers.sqs_transport`), long polls, bounded calls, and a
  failed message left in its queue so SQS's RedrivePolicy dead-letters it (native DLQ: the guard publishes
  no letter of its own). No fanout: no events, no remote control, so Flower has nothing to show.
- Depths: `GetQueueAttributes` of each configured queue and its DLQ, by their real names and in the
  configured region/endpoint; the dead-letter depth is the sum of the DLQs.
- Requeue view: only an empty queue (nothing visible, delayed or in flight) proves a message is gone.
- Publish options: on a FIFO queue `MessageGroupId` (one group's jobs in order) and
  `MessageDeduplicationId` (SQS drops a double submit), both hashed by the job kind's functions; a retry
  keeps its group with an attempt-specific dedup id; a redrive or a requeue gets a fresh one.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable

from coachup.deadletters import DeadLetter
from coachup.jobs import QUEUES, JobKind, JobRef
from coachup.queues import DeadLetterDepth, QueueDepth
from coachup.redaction import Hasher, scrub
from coachup.settings import Settings

from .base import Broker, BrokerView, MissingExtra

__all__ = ["SqsBroker", "WAIT_TIME_S"]

# seconds of one SQS long poll: short enough that a warm shutdown is quick, long enough to cost few calls
WAIT_TIME_S = 5
_FIFO = frozenset(q.name for q in QUEUES if q.fifo)


class SqsBroker(Broker):
    """`COACHUP_BROKER_URL=sqs://` (queues made by `coachup sqs bootstrap`)."""

    name = "sqs"
    native_dlq = True
    has_events = False

    def __init__(self, settings: Settings) -> None:
        from coachup.sqs.names import check_sqs_settings

        for module, extra in (("boto3", "sqs"), ("pycurl", "sqs")):
            try:
                __import__(module)
            except ImportError:
                raise MissingExtra(f"the SQS broker needs {module}: pip install 'coachup[{extra}]'") from None
        check_sqs_settings(settings)
        super().__init__(settings)
        self._ping = None  # the health checks' client (`_ping_client`)
        self._ping_lock = threading.Lock()

    def describe(self) -> str:
        return f"sqs ({self.settings.aws_region}{', ' + scrub(self.settings.sqs_endpoint_url) if self.settings.sqs_endpoint_url else ''})"

    def celery_options(self) -> dict:
        from coachup.sqs.names import sqs_queues

        from ..sqs_transport import TRANSPORT

        s = self.settings
        options = {
            "region": s.aws_region,
            "visibility_timeout": s.visibility_timeout_s,  # informative: each queue's own attribute governs
            "wait_time_seconds": WAIT_TIME_S,
            "coachup_queue_names": {q.logical: q.name for q in sqs_queues(s)},
            # bounded calls: a publish to an unreachable SQS fails fast and the outbox relay retries it (Celery's publish
            # retry policy adds one more); reads stay above the long poll of the blocking client
            "client-config": {
                "connect_timeout": s.enqueue_timeout_s,
                "read_timeout": WAIT_TIME_S + 5,
                "retries": {"total_max_attempts": 2, "mode": "standard"},
            },
        }
        if s.sqs_endpoint_url:
            options["endpoint_url"] = s.sqs_endpoint_url.rstrip("/")
            options["is_secure"] = s.sqs_endpoint_url.startswith("https")
        return {
            "broker_transport": TRANSPORT,
            "broker_transport_options": options,
            # a failed task's message is rejected, not deleted: SQS redelivers it and, after maxReceiveCount
            # receives, moves it to the queue's DLQ. Nothing is lost in between.
            "task_acks_on_failure": False,
            "task_acks_on_timeout": False,
        }

    def install(self, app) -> None:
        from coachup.sqs.observe import install_observer

        from ..metrics_host import SqsMetricsObserver, metrics_for

        install_observer(SqsMetricsObserver(lambda: metrics_for(app)))

    def bootstrap(self) -> list:
        from coachup.sqs.admin import bootstrap

        return bootstrap(self.settings)

    # ---- reading --------------------------------------------------------------------------------------
    def ping(self, app) -> None:
        from coachup.sqs.admin import ping

        ping(self.settings, self._ping_client())  # the channel caches queue URLs: ask SQS itself each time

    def _ping_client(self):
        """One client for every health check of this broker, built by `warm` or by the first check."""
        with self._ping_lock:
            if self._ping is None:
                from coachup.sqs.admin import ping_client

                self._ping = ping_client(self.settings)
            return self._ping

    def warm(self, app) -> None:
        self._ping_client()

    def queue_depths(self, app, queues: Iterable[str]) -> list[QueueDepth]:
        from coachup.sqs.admin import depths

        wanted = list(queues)
        rows = {d.queue: d for d in depths(self.settings)}
        return [rows[q] for q in wanted if q in rows]

    def dead_letters(self, store):
        from coachup.sqs.deadletters import SqsDeadLetters

        return SqsDeadLetters(self.settings)

    def dead_letter_depth(self, rows: list[QueueDepth], store) -> DeadLetterDepth:
        # every letter waits in a queue's own DLQ: none is stored elsewhere
        return DeadLetterDepth(stored=0, in_broker=sum(r.dead_letter or 0 for r in rows))

    def requeue_view(self, app, queue: str) -> BrokerView:
        [row] = self.queue_depths(app, [queue])
        if row.visible is None:  # the queue does not exist: nothing can be in it
            return BrokerView(empty=True)
        return BrokerView(empty=(row.visible or 0) == 0 and (row.in_flight or 0) == 0)

    # ---- publishing -----------------------------------------------------------------------------------
    def publish_options(self, kind: JobKind, hasher: Hasher, job: JobRef, *, attempt: str = "") -> dict:
        if kind.queue not in _FIFO or kind.fifo_group is None or kind.fifo_dedup is None:
            return {}
        dedup = kind.fifo_dedup(hasher, job)
        return {
            "MessageGroupId": kind.fifo_group(hasher, job),
            # a fresh dedup id for a republished copy: SQS would drop it within the original's 5-minute window
            "MessageDeduplicationId": f"{dedup}:{attempt}" if attempt else dedup,
        }

    def retry_options(self, request) -> dict:
        props = getattr(request, "properties", None) or {}
        group = props.get("MessageGroupId")
        if not group:
            return {}
        base = str(props.get("MessageDeduplicationId") or request.id).split(":r", 1)[0]
        # deterministic per attempt: a redelivered original that retries again is dropped by SQS, not doubled
        return {"MessageGroupId": group, "MessageDeduplicationId": f"{base}:r{request.retries + 1}"}

    def defer_options(self, request) -> dict:
        props = getattr(request, "properties", None) or {}
        group = props.get("MessageGroupId")
        if not group:
            return {}
        # a deferred duplicate (workers/run_lease.py) is a new message of the same job: a fresh dedup id
        return {"MessageGroupId": group, "MessageDeduplicationId": uuid.uuid4().hex}

    def redrive_options(self, letter: DeadLetter) -> dict:
        if not letter.group_id:
            return {}
        # FIFO: same group, fresh dedup id (the old one may still be in the dedup window)
        return {"MessageGroupId": letter.group_id, "MessageDeduplicationId": uuid.uuid4().hex}
