"""Observation of the SQS calls the broker transport really makes (send, receive, delete, change visibility).

The transport reports each call to one process-wide observer. Metrics are not declared here: the metrics
module installs an observer that maps calls to the `coachup_sqs_*` series. Observers never break work: an
observer that raises is logged once per call and ignored.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

__all__ = [
    "SqsCallObserver",
    "OPERATIONS",
    "install_observer",
    "current_observer",
    "report",
    "RecordingObserver",
    "operation_for",
]

log = logging.getLogger("coachup.sqs")

# SQS API action -> operation name reported to observers
OPERATIONS = {
    "SendMessage": "send",
    "ReceiveMessage": "receive",
    "DeleteMessage": "delete",
    "ChangeMessageVisibility": "change_visibility",
}


class SqsCallObserver(Protocol):
    """Receives one call to SQS made by the broker transport."""

    def on_call(self, operation: str, seconds: float, ok: bool, count: int = 1) -> None:
        """`operation` is send|receive|delete|change_visibility; `seconds` the wall time of the call
        (including botocore's own retries); `ok` False when it raised or answered an HTTP error; `count` the
        messages it carried (for `receive`: messages returned, 0 for an empty poll)."""


_observer: SqsCallObserver | None = None
_lock = threading.Lock()


def install_observer(observer: SqsCallObserver | None) -> SqsCallObserver | None:
    """Make `observer` the process-wide observer (None removes it). Returns the previous one."""
    global _observer
    with _lock:
        previous, _observer = _observer, observer
    return previous


def current_observer() -> SqsCallObserver | None:
    return _observer


def operation_for(action: str) -> str | None:
    """The reported name of an SQS API action, or None when it is not observed."""
    return OPERATIONS.get(action)


def report(operation: str, seconds: float, ok: bool, count: int = 1) -> None:
    """Hand one call to the installed observer, if any; never raises."""
    observer = _observer
    if observer is None:
        return
    try:
        observer.on_call(operation, seconds, ok, count)
    except Exception:  # observers never break work
        log.warning("sqs observer failed", extra={"event": "observer_error", "receiver": "sqs"})


class RecordingObserver:
    """Keeps every call in memory (tests, debugging): `calls` is a list of (operation, seconds, ok, count)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float, bool, int]] = []
        self._lock = threading.Lock()

    def on_call(self, operation: str, seconds: float, ok: bool, count: int = 1) -> None:
        with self._lock:
            self.calls.append((operation, seconds, ok, count))

    def of(self, operation: str) -> list[tuple[str, float, bool, int]]:
        with self._lock:
            return [c for c in self.calls if c[0] == operation]
