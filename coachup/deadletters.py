"""Dead letters: the record of a job that died, and the seam every dead-letter queue sits behind.

A `DeadLetter` holds references only (task name, id arguments, safe headers) plus why the job died, so it
can be shown to an operator and run again. `DeadLetterSource` is the small seam over "the dead-letter
queue": on Redis and the embedded broker it is a store table fed by the `deadletter` queue
(`coachup.store.deadletters.StoreDeadLetters`); on SQS it will be the queue's own DLQ.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "DeadLetter",
    "DeadLetterSource",
    "REASONS",
    "SAFE_HEADERS",
    "safe_headers",
    "matches",
    "dead_letter_id",
]

#: why a job died (a bounded set: it becomes a metric label)
REASONS = (
    "permanent",
    "retries_exhausted",
    "redeliveries",
    "time_limit",
    "unexpected",
    "redrive_limit",
    "max_receives",
)  # max_receives: SQS RedrivePolicy moved it (SQS DLQs only)

#: the only message headers a dead letter keeps (and a redrive sends again): all already safe to show
SAFE_HEADERS = (
    "requestId",
    "traceparent",
    "userIdHash",
    "sessionIdHash",
    "trackedSkillIdHash",
    "groupId",
    "provider",
    "modelId",
    "enqueuedAtMs",
    "firstFailureAtMs",
    "redriveCount",
)


def safe_headers(headers: dict | None) -> dict:
    """The subset of `headers` a dead letter may hold (never a raw id or text: see `SAFE_HEADERS`)."""
    return {k: v for k, v in (headers or {}).items() if k in SAFE_HEADERS and v is not None}


@dataclass(frozen=True)
class DeadLetter:
    """One dead job. Times are ISO-8601 UTC strings; `attempts` counts runs of the task body."""

    id: str  # `<task id>.<redrives>`: a job dead-lettered again after a redrive gets a new letter
    task_id: str
    task: str
    queue: str
    reason: str
    error_type: str
    error_message: str  # scrubbed and truncated (`coachup.redaction.scrub`)
    attempts: int
    first_failure_at: str
    last_failure_at: str
    worker: str = ""
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    group_id: str | None = None  # FIFO message group (SQS); None elsewhere
    redrives: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DeadLetter:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    def summary(self) -> dict:
        """The listing view: everything but the arguments."""
        return {k: v for k, v in self.to_dict().items() if k not in ("args", "kwargs", "headers")}


def matches(letter: DeadLetter, *, task: str | None = None, error: str | None = None) -> bool:
    """Filter of `dlq ls/redrive`: `task` is an exact task name or a `prefix.*`; `error` an error type or reason."""
    if task:
        if task.endswith("*"):
            if not letter.task.startswith(task[:-1]):
                return False
        elif letter.task != task:
            return False
    return not error or error in (letter.error_type, letter.reason)


@runtime_checkable
class DeadLetterSource(Protocol):
    """Where dead letters wait. Implementations: store-backed (Redis, embedded); SQS DLQ (later)."""

    kind: str

    def list(
        self, *, task: str | None = None, error: str | None = None, limit: int | None = None
    ) -> builtins.list[DeadLetter]:
        """Newest first, without consuming (SQS: receive, then make visible again)."""

    def get(self, letter_id: str) -> DeadLetter | None:
        """One letter by id, or None."""

    def for_task(self, task_id: str) -> DeadLetter | None:
        """The newest letter of the job `task_id`, or None (`/api/v1/jobs/{id}`, `coachup jobs show`)."""

    def redrive(self, letters: Iterable[DeadLetter], send: Callable[[DeadLetter], None]) -> builtins.list[str]:
        """For each letter: `send` it to its queue, then remove it here; return the ids removed.

        Send before remove: a crash in between leaves the job in both places (harmless: jobs are
        idempotent), never in neither. A letter whose `send` raises stays and the error propagates.
        """

    def hold(self, letter: DeadLetter, reason: str) -> None:
        """Keep `letter` in the dead-letter queue with a new reason (e.g. `redrive_limit`)."""

    def purge(self) -> int:
        """Delete every letter; return how many."""

    def depth(self) -> int:
        """How many letters wait (the DLQ depth gauge)."""


def dead_letter_id(source: DeadLetterSource, job: dict) -> str | None:
    """The id of a failed job's letter (only a failed job is looked up; an unreachable DLQ answers None)."""
    if job.get("status") != "failed":
        return None
    try:
        letter = source.for_task(job["taskId"])
    except Exception:  # the DLQ (SQS, the store's table) unreachable: the job's own state still answers
        return None
    return letter.id if letter is not None else None
