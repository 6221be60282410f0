"""`coachup dlq`: look into the dead-letter queue, redrive it, purge it.

The source is the broker's (`workers.brokers`): Redis and the embedded broker keep dead letters in the
store (`StoreDeadLetters`), SQS in each queue's own DLQ (`SqsDeadLetters`).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from contextlib import contextmanager

import click

from .common import _settings

__all__ = ["dlq", "dead_letter_source"]


def dead_letter_source(settings, store=None):
    """The `DeadLetterSource` of the configured broker."""
    from coachup.store import create_store
    from workers.brokers import broker_for

    return broker_for(settings).dead_letters(store or create_store(settings.database_url))


@contextmanager
def _reachable():
    """The dead-letter queue unreachable (SQS or the store down): one line and exit 1, not a traceback."""
    try:
        yield
    except click.ClickException:
        raise
    except Exception as exc:
        raise click.ClickException(
            f"dead-letter queue unreachable ({type(exc).__name__}); check the broker or store and run the command again"
        ) from None


@click.group()
def dlq() -> None:
    """Dead letters: ls, show, redrive, purge."""


@dlq.command("ls")
@click.option("--task", default=None, help="Task name, or a prefix like `assessments.*`.")
@click.option("--error", default=None, help="Error type (e.g. `timeout`) or reason (e.g. `redeliveries`).")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def ls(task, error, limit, as_json) -> None:
    """What is in the dead-letter queue, newest first, without consuming it."""
    with _reachable():
        letters = dead_letter_source(_settings()).list(task=task, error=error, limit=limit)
    if as_json:
        click.echo(json.dumps([letter.summary() for letter in letters], indent=2))
        return
    if not letters:
        click.echo("the dead-letter queue is empty")
        return
    click.echo(f"{'ID':<40} {'TASK':<22} {'REASON':<18} {'ERROR':<22} {'ATT':>3} {'REDR':>4}  LAST FAILURE")
    for x in letters:
        click.echo(
            f"{x.id:<40} {x.task:<22} {x.reason:<18} {x.error_type:<22} {x.attempts:>3} {x.redrives:>4}  "
            f"{x.last_failure_at}"
        )


@dlq.command("show")
@click.argument("letter_id")
def show(letter_id) -> None:
    """Everything one dead letter holds (references only), as JSON."""
    with _reachable():
        letter = dead_letter_source(_settings()).get(letter_id)
    if letter is None:
        raise click.ClickException(f"no dead letter {letter_id!r}")
    click.echo(json.dumps(letter.to_dict(), indent=2))


@dlq.command("redrive")
@click.option("--task", default=None, help="Only this task (or `prefix.*`).")
@click.option("--error", default=None, help="Only this error type or reason.")
@click.option("--limit", type=int, default=None, help="At most N letters (oldest first).")
@click.option("--dry-run", is_flag=True, help="Show what would move; move nothing.")
@click.option("--rate", type=float, default=None, help="At most R messages per second.")
@click.option("--batch-size", type=int, default=10, show_default=True)
def redrive_cmd(task, error, limit, dry_run, rate, batch_size) -> None:
    """Move dead letters back to their original queues (send first, then remove: a crash loses nothing)."""
    from coachup.redrive import redrive
    from workers import create_celery
    from workers.deadletter import redrive_sender

    settings = _settings()
    source = dead_letter_source(settings)
    if dry_run:
        report = redrive(
            source,
            lambda _l: None,
            max_redrives=settings.max_redrives,
            task=task,
            error=error,
            limit=limit,
            dry_run=True,
        )
        click.echo(json.dumps(report.to_dict()))
        return
    selected = len(source.list(task=task, error=error))
    total = min(selected, limit) if limit is not None else selected
    send = redrive_sender(create_celery(settings))
    stop = threading.Event()  # Ctrl-C: finish the message in flight, then stop (never half-moved)
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())  # restored below, whatever it was
    try:
        with click.progressbar(length=total, label="redriving", file=sys.stderr) as bar:
            report = redrive(
                source,
                send,
                max_redrives=settings.max_redrives,
                task=task,
                error=error,
                limit=limit,
                rate=rate,
                batch_size=batch_size,
                progress=bar.update,
                stop=stop.is_set,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    click.echo(json.dumps(report.to_dict()))
    if report.interrupted:
        click.echo("interrupted: the rest is still in the dead-letter queue; run the same command again", err=True)
        sys.exit(130)


@dlq.command("purge")
@click.option("--yes", is_flag=True, help="Confirm: delete every dead letter for good.")
def purge(yes) -> None:
    """Delete every dead letter (they cannot be redriven afterwards)."""
    if not yes:
        raise click.ClickException("purge deletes every dead letter for good; pass --yes to confirm")
    with _reachable():
        n = dead_letter_source(_settings()).purge()
    click.echo(f"purged {n} dead letters")


from .quarantine import quarantine_cmd  # noqa: E402 - a subgroup, attached once `dlq` exists

dlq.add_command(quarantine_cmd)
