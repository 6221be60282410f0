"""Redrive: move dead letters back to their queues in bounded batches, at a bounded rate, never looping.

Pure orchestration over a `DeadLetterSource` and a `send` callable (the broker adapter), so the CLI, the
ops API and an SQS source share it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .deadletters import DeadLetter, DeadLetterSource

__all__ = ["RedriveReport", "redrive", "discard", "older_than", "DEFAULT_BATCH", "PERMANENT"]

PERMANENT = "permanent"  # the reason of a job that failed in a way a retry cannot fix (`coachup.deadletters`)
DEFAULT_BATCH = 10  # one SQS SendMessageBatch; small enough that a Ctrl-C stops within one batch


@dataclass
class RedriveReport:
    """What a redrive did (or, on a dry run, would do). `held`: letters over `COACHUP_MAX_REDRIVES`, kept in
    the DLQ. `kept_permanent`: letters that died of a `permanent` error, left alone unless asked for (they
    would fail the same way again)."""

    selected: int = 0
    redriven: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    kept_permanent: list[str] = field(default_factory=list)
    would_redrive: list[str] = field(default_factory=list)  # dry run: what a real run would send
    would_hold: list[str] = field(default_factory=list)  # dry run: what a real run would hold (redrive limit)
    dry_run: bool = False
    interrupted: bool = False

    def to_dict(self) -> dict:
        return {
            "selected": self.selected,
            "redriven": len(self.redriven),
            "held": len(self.held),
            "keptPermanent": len(self.kept_permanent),
            "dryRun": self.dry_run,
            "interrupted": self.interrupted,
            "redrivenIds": self.redriven,
            "heldIds": self.held,
            "keptPermanentIds": self.kept_permanent,
            "wouldRedriveIds": self.would_redrive,
            "wouldHoldIds": self.would_hold,
        }


def redrive(
    source: DeadLetterSource,
    send: Callable[[DeadLetter], None],
    *,
    max_redrives: int,
    task: str | None = None,
    error: str | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    include_permanent: bool = False,
    rate: float | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RedriveReport:
    """Redrive the letters matching `task`/`error` (oldest first, at most `limit`).

    `rate` caps messages per second (None: as fast as the broker takes them). A letter already redriven
    `max_redrives` times is held (reason `redrive_limit`) instead of sent. `progress(n)` is called after
    each batch with the number of letters it handled. `stop()` is asked before each batch (and each
    message when rate-limited): a Ctrl-C handler sets it so the message in flight finishes first.

    Letters whose reason is `permanent` stay where they are (`kept_permanent`) unless `include_permanent`
    or an `error` filter (an error type, or `permanent` itself) asks for them. A dry run moves nothing and lists what would happen (`would_redrive`, `would_hold`).
    """
    letters = list(reversed(source.list(task=task, error=error, limit=None)))
    if limit is not None:
        letters = letters[:limit]
    report = RedriveReport(selected=len(letters), dry_run=dry_run)
    if not (include_permanent or error):  # naming an error (type or reason) is asking for those letters
        report.kept_permanent = [x.id for x in letters if x.reason == PERMANENT]
        letters = [x for x in letters if x.reason != PERMANENT]
    if dry_run:
        for letter in letters:
            (report.would_hold if letter.redrives >= max_redrives else report.would_redrive).append(letter.id)
        return report
    started, sent = clock(), 0
    for i in range(0, len(letters), max(1, batch_size)):
        if stop():
            report.interrupted = True
            break
        batch = letters[i : i + batch_size]
        to_send = []
        for letter in batch:
            if letter.redrives >= max_redrives:
                source.hold(letter, "redrive_limit")
                report.held.append(letter.id)
            else:
                to_send.append(letter)
        if rate:
            for letter in to_send:
                if stop():
                    report.interrupted = True
                    return report
                wait = started + sent / rate - clock()
                if wait > 0:
                    sleep(wait)
                report.redriven.extend(source.redrive([letter], send))
                sent += 1
        else:
            report.redriven.extend(source.redrive(to_send, send))
        if progress is not None:
            progress(len(batch))
    return report


def older_than(letter: DeadLetter, cutoff: datetime) -> bool:
    """True when `letter` last failed before `cutoff` (an aware UTC datetime)."""
    try:
        last = datetime.fromisoformat(letter.last_failure_at)  # reads a trailing "Z" (Python 3.11+)
    except ValueError:
        return False  # an unreadable time is never old enough to delete
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return last < cutoff


def discard(source: DeadLetterSource, letters: Iterable[DeadLetter]) -> list[str]:
    """Delete `letters` for good; return the ids deleted.

    The source's `redrive` with a send that goes nowhere: the same claim-then-remove path (on SQS the only
    way to delete one message is to receive it), so a filtered purge needs no second implementation.
    """
    return source.redrive(letters, lambda _letter: None)
