"""What every broker answers (`Broker`), and the requeue sweep's view of one queue (`BrokerView`).

One subclass per broker (`redis.py`, `embedded.py`, `sqs.py`), chosen once by `workers.brokers.broker_for`;
the rest of the worker layer asks the chosen object, never which broker it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from coachup.deadletters import DeadLetter, DeadLetterSource
from coachup.jobs import JobKind, JobRef
from coachup.queues import DeadLetterDepth, QueueDepth
from coachup.redaction import Hasher, scrub
from coachup.settings import Settings

__all__ = ["Broker", "BrokerView", "LocalServer", "CLOCK_MARGIN_S", "MissingExtra"]

#: API hosts' clocks and the time between writing a row and publishing its message; a job counts as older
#: than the oldest waiting message only by more than this
CLOCK_MARGIN_S = 5.0


class MissingExtra(RuntimeError):
    """An optional dependency the configuration needs is not installed; the message has the pip command."""


@dataclass(frozen=True)
class BrokerView:
    """What the broker can still hold for one queue, as far as the requeue rule needs to know."""

    held_ids: frozenset[str] = frozenset()  # task ids taken by a worker but not acknowledged (Redis)
    oldest_waiting_ms: int | None = None  # publish time of the oldest waiting message (Redis); None: empty
    empty: bool = False  # nothing waiting and nothing in flight (SQS)
    exact: bool = False  # True on Redis: `held_ids` and `oldest_waiting_ms` are known
    # the task ids of every waiting message, read in the same instant as `held_ids` (Redis, a queue short enough
    # to list: the pop-window watch's view); None when not listed
    waiting_ids: frozenset[str] | None = None
    # unacked entries no consumer can still be holding (Redis: `redis._orphaned`), task id -> delivery tags; left
    # out of `held_ids`, and dropped by `Broker.drop_orphans` once the job's message is published again
    orphaned: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def may_hold(self, job_id: str, queued_at: datetime) -> bool:
        """True when the broker could still deliver `job_id`'s message (then leave it alone)."""
        if self.exact:
            if job_id in self.held_ids:
                return True
            if self.waiting_ids is not None:
                return job_id in self.waiting_ids
            if self.oldest_waiting_ms is None:
                return False
            return queued_at.timestamp() * 1000 >= self.oldest_waiting_ms - CLOCK_MARGIN_S * 1000
        return not self.empty


class LocalServer:
    """A broker server this system runs itself (the embedded Redis): `coachup run` starts it first."""

    def start(self) -> LocalServer:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def running(self) -> bool:
        raise NotImplementedError


class Broker:
    """The seam. Attributes are capabilities, methods answer for this broker (see each subclass)."""

    name: str = ""  # a label for logs, banners and API bodies (`embedded`, `redis`, `sqs`); never branched on
    native_dlq: bool = False  # the broker dead-letters a failed message itself (SQS RedrivePolicy)
    has_events: bool = True  # worker events and remote control (what Flower shows)
    pop_window: bool = False  # `pop_window_view` can say exactly what the broker holds (the pop-window watch)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # ---- configuration ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.settings.broker_url

    @property
    def result_backend(self) -> str:
        """`COACHUP_RESULT_BACKEND`, else a table beside the store (SQLite file or the PostgreSQL database)."""
        if self.settings.result_backend:
            return self.settings.result_backend
        db = self.settings.database_url
        if db.startswith("sqlite"):
            return f"db+sqlite:///{(self.settings.data_dir / 'results.sqlite').resolve()}"
        return "db+" + db

    def celery_options(self) -> dict:
        """Celery settings merged over the common ones (`celeryconfig`)."""
        return {}

    def describe(self) -> str:
        """One line for the `coachup run` banner (credentials scrubbed)."""
        return f"{self.name} ({scrub(self.url, limit=200)})"

    def local_server(self) -> LocalServer | None:
        """The server `coachup run` starts first and stops last, or None (an external broker)."""
        return None

    def install(self, app) -> None:
        """Per-app plumbing the broker needs (e.g. observing SQS calls); called once by `create_celery`."""

    def warm(self, app) -> None:
        """Build what the health check needs before the first probe (called by the API at start), so the first
        readiness answer measures the broker, not the building of a client."""

    def quarantine_client(self, app):
        """A context manager giving the client of the quarantine list (`workers.quarantine`), or None when this
        broker keeps none (SQS: its RedrivePolicy moves an unreadable message to the queue's DLQ)."""
        return nullcontext(None)

    def bootstrap(self) -> list:
        """Create what the broker needs (queues, DLQs); only SQS has anything to create."""
        raise NotImplementedError(f"nothing to bootstrap on the {self.name} broker (COACHUP_BROKER_URL is not sqs://)")

    # ---- reading --------------------------------------------------------------------------------------
    def ping(self, app) -> None:
        """Raise unless the broker answers (health checks)."""
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, timeout=2.0)

    def queue_depths(self, app, queues: Iterable[str]) -> list[QueueDepth]:
        """One row per queue: waiting, in flight, dead-lettered (None where the broker cannot tell)."""
        raise NotImplementedError

    def dead_letters(self, store) -> DeadLetterSource:
        """Where this broker's dead letters wait (`coachup dlq`, the ops API)."""
        raise NotImplementedError

    def dead_letter_depth(self, rows: list[QueueDepth], store) -> DeadLetterDepth:
        """The one dead-letter depth every reader reports (stored vs waiting in the broker), given the rows."""
        raise NotImplementedError

    def requeue_view(self, app, queue: str) -> BrokerView:
        """Whether the broker may still hold a job's message on `queue` (the requeue sweep's question)."""
        raise NotImplementedError

    def pop_window_view(self, app, queue: str) -> BrokerView | None:
        """One instant of everything the broker holds for `queue`, exact (the pop-window watch,
        `workers/popwatch.py`), or None when this broker cannot tell (SQS: in-flight messages are not listable)."""
        return None

    def drop_orphans(self, app, tags: Iterable[str]) -> None:
        """Remove orphaned unacked entries (`BrokerView.orphaned`) whose jobs were just published again, so the
        broker holds one copy of each job, not also a stale one that its visibility timeout would deliver an hour
        later (a no-op run, but an `unacked` count that says a message is in flight when none is)."""

    # ---- publishing -----------------------------------------------------------------------------------
    def publish_options(self, kind: JobKind, hasher: Hasher, job: JobRef, *, attempt: str = "") -> dict:
        """Extra `send_task` options of a job's message; `attempt` makes a republished copy distinct."""
        return {}

    def retry_options(self, request) -> dict:
        """Extra options of a retry's message (Celery's retry drops what `publish_options` added)."""
        return {}

    def defer_options(self, request) -> dict:
        """Extra options of a deferred duplicate's message (`workers/run_lease.py`): it must not be dropped as a
        copy of the message it is (SQS FIFO deduplicates)."""
        return {}

    def redrive_options(self, letter: DeadLetter) -> dict:
        """Extra options of a redriven letter's message."""
        return {}
