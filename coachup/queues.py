"""Queue depths as every reader sees them: one row per queue, and one dead-letter depth.

`workers.depths.read_depths` fills a `DepthReport` from the configured broker (the only place depths are
read); `coachup queues`, the ops API, the worker's gauges and the requeue sweep all read that one report.
`None` means the broker cannot tell.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["QueueDepth", "DeadLetterDepth", "DepthReport", "DEADLETTER_QUEUE", "DEAD_LETTER_DEPTH_MEANS"]

DEADLETTER_QUEUE = "deadletter"  # the logical queue of `deadletter.record` (Redis, embedded)


@dataclass(frozen=True)
class QueueDepth:
    """Depths of one queue: waiting, received but not yet acknowledged, and dead-lettered from it."""

    queue: str
    broker_name: str
    visible: int | None
    in_flight: int | None
    dead_letter: int | None

    def as_dict(self) -> dict:
        return {
            "queue": self.queue,
            "brokerName": self.broker_name,
            "visible": self.visible,
            "inFlight": self.in_flight,
            "deadLetter": self.dead_letter,
        }


#: what the one dead-letter depth counts, said by every view that shows it (CLI, ops API, docs)
DEAD_LETTER_DEPTH_MEANS = "stored letters plus letters waiting in the broker"


@dataclass(frozen=True)
class DeadLetterDepth:
    """The one dead-letter depth, in its two parts.

    `stored`: letters in the store's dead-letter table, the ones `coachup dlq ls` lists (Redis, embedded).
    `in_broker`: letters waiting in the broker: on the `deadletter` queue on their way to the store (Redis,
    embedded; the recorder is behind or the store is down), or in the queues' DLQs (SQS, where `coachup dlq
    ls` lists them).
    """

    stored: int
    in_broker: int

    @property
    def total(self) -> int:
        return self.stored + self.in_broker

    def as_dict(self) -> dict:
        return {
            "depth": self.total,
            "stored": self.stored,
            "inBroker": self.in_broker,
            "counts": DEAD_LETTER_DEPTH_MEANS,
        }

    def describe(self) -> str:
        """`3 (2 stored, 1 waiting in the broker)`: the line the CLI prints."""
        return f"{self.total} ({self.stored} stored, {self.in_broker} waiting in the broker)"


@dataclass(frozen=True)
class DepthReport:
    """Every queue's depth and the dead-letter depth (`DeadLetterDepth`)."""

    broker: str
    queues: tuple[QueueDepth, ...]
    dead: DeadLetterDepth

    @property
    def dead_letters(self) -> int:
        """The dead-letter depth every view reports (`coachup_queue_depth{queue="deadletter"}`)."""
        return self.dead.total

    def row(self, queue: str) -> QueueDepth | None:
        return next((r for r in self.queues if r.queue == queue), None)

    def gauges(self) -> tuple[dict[str, int], dict[str, int]]:
        """({queue: waiting}, {queue: in flight}) for `coachup_queue_depth` / `coachup_queue_in_flight`.

        The `deadletter` series is the dead-letter depth itself (what the DLQ alert watches) on every broker.
        """
        waiting = {r.queue: r.visible or 0 for r in self.queues}
        waiting[DEADLETTER_QUEUE] = self.dead_letters
        in_flight = {r.queue: r.in_flight for r in self.queues if r.in_flight is not None}
        return waiting, in_flight

    def as_dict(self) -> dict:
        return {
            "broker": self.broker,
            "queues": [r.as_dict() for r in self.queues],
            "deadLetters": self.dead.as_dict(),
        }
