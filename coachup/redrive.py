"""Redrive: move dead letters back to their queues in bounded batches, at a bounded rate, never looping.

Pure orchestration over a `DeadLetterSource` and a `send` callable (the broker adapter), so the CLI, the
ops API and an SQS source share it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .deadletters import DeadLetter, DeadLetterSource

__all__ = ["RedriveReport", "redrive", "DEFAULT_BATCH"]

DEFAULT_BATCH = 10  # one SQS SendMessageBatch; small enough that a Ctrl-C stops within one batch


@dataclass
class RedriveReport:
    """What a redrive did. `held`: letters over `COACHUP_MAX_REDRIVES`, kept in the DLQ."""

    selected: int = 0
    redriven: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    dry_run: bool = False
    interrupted: bool = False

    def to_dict(self) -> dict:
        return {
            "selected": self.selected,
            "redriven": len(self.redriven),
            "held": len(self.held),
            "dryRun": self.dry_run,
            "interrupted": self.interrupted,
            "redrivenIds": self.redriven,
            "heldIds": self.held,
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
    """
    letters = list(reversed(source.list(task=task, error=error, limit=None)))
    if limit is not None:
        letters = letters[:limit]
    report = RedriveReport(selected=len(letters), dry_run=dry_run)
    if dry_run:
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
