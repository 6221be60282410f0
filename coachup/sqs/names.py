"""SQS queue names: which SQS queue serves each logical Celery queue, and its dead-letter queue.

The logical names (`coachup.jobs.QUEUES`: `assessments`, `stt`, `tts`, `deadletter`) stay the same on every
broker; on SQS each maps to a real queue (`COACHUP_SQS_<QUEUE>_QUEUE`, prefixed by `COACHUP_SQS_QUEUE_PREFIX`).
A DLQ is named after its queue with `-dlq` before any `.fifo` suffix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from coachup.jobs import QUEUES
from coachup.settings import SettingsError, dlq_name, sqs_queue_var

__all__ = ["SqsQueue", "sqs_queues", "dlq_name", "check_sqs_settings", "FIFO_LOGICAL", "MAX_VISIBILITY_S"]

FIFO_LOGICAL = frozenset(q.name for q in QUEUES if q.fifo)  # one session's jobs run in order
MAX_VISIBILITY_S = 43_200  # SQS's own ceiling for a visibility timeout (12 h)
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


@dataclass(frozen=True)
class SqsQueue:
    """One logical queue on SQS: its SQS name, its DLQ's name, FIFO or standard."""

    logical: str
    name: str
    dlq: str

    @property
    def fifo(self) -> bool:
        return self.name.endswith(".fifo")


def sqs_queues(settings) -> tuple[SqsQueue, ...]:
    """Every queue the system uses on SQS, in the order of `settings.sqs_queue_names`."""
    out = []
    for logical, base in settings.sqs_queue_names:
        name = settings.sqs_queue_prefix + base
        out.append(SqsQueue(logical, name, dlq_name(name)))
    return tuple(out)


def _check_name(name: str, *, fifo: bool, var: str) -> None:
    stem = name[: -len(".fifo")] if name.endswith(".fifo") else name
    if not _NAME.match(stem) or len(name) > 80:
        raise ValueError(f"{var}: {name!r} is not a valid SQS queue name (letters, digits, - and _, at most 80)")
    if fifo != name.endswith(".fifo"):
        kind = "a FIFO queue and must end with .fifo" if fifo else "a standard queue and must not end with .fifo"
        raise ValueError(f"{var}: {name!r} is {kind}")


def check_sqs_settings(settings) -> None:
    """Refuse SQS settings that would lose order, loop, or run a task twice (raises `SettingsError`)."""
    vt = settings.visibility_timeout_s
    try:
        for q in sqs_queues(settings):
            var = sqs_queue_var(q.logical)
            _check_name(q.name, fifo=q.logical in FIFO_LOGICAL, var=var)
            _check_name(q.dlq, fifo=q.logical in FIFO_LOGICAL, var=var + " (its -dlq)")
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    if not 1 <= settings.sqs_max_receive_count <= 1000:
        raise SettingsError("COACHUP_SQS_MAX_RECEIVE_COUNT must be between 1 and 1000 (SQS's range)")
    if not 0 < vt <= MAX_VISIBILITY_S:
        raise SettingsError(f"COACHUP_VISIBILITY_TIMEOUT_S must be between 1 and {MAX_VISIBILITY_S} s on SQS")
    # A retry's countdown is held in worker memory while its message stays in flight, then the task runs:
    # both must end before SQS makes the message visible again, or a second worker runs it too.
    held_s = settings.backoff_max_ms / 1000 + settings.group_timeout_ms / 1000 + 20
    if held_s >= vt:
        raise SettingsError(
            f"COACHUP_VISIBILITY_TIMEOUT_S ({vt} s) must exceed the longest backoff plus the task time limit "
            f"(ASSESSMENTS_BACKOFF_MAX_MS + ASSESSMENT_GROUP_TIMEOUT_MS + 20 s = {held_s:.1f} s): otherwise SQS "
            "delivers a message again while a worker still holds it and the task runs twice"
        )
