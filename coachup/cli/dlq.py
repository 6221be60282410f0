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

from .common import _settings, failure

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
        raise failure(exc, "dead-letter queue unreachable") from None


@click.group()
def dlq() -> None:
    """Dead letters: ls, show, redrive, purge."""


@dlq.command("ls")
@click.option("--task", default=None, help="Task name, or a prefix like `assessments.*`.")
@click.option("--error", default=None, help="Error type (e.g. `timeout`) or reason (e.g. `redeliveries`).")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def ls(task, error, limit, as_json) -> None:
    """What is in the dead-letter queue, newest first, without consuming it, and the one dead-letter depth.

    On Redis and the embedded broker a second section lists the pending letters: written to the ledger by the
    dying job's worker, not recorded yet (their `deadletter.record` message is on its way, or lost and resent by
    the scheduler's sweep). They cannot be redriven until they are recorded."""
    settings = _settings()
    with _reachable():
        source = dead_letter_source(settings)
        letters = source.list(task=task, error=error, limit=limit)
        pending_of = getattr(source, "pending_letters", None)  # the store's ledger; SQS has none
        pending = pending_of(task=task, error=error, limit=limit) if pending_of is not None else []
    depth = _depth_line(settings)
    if as_json:
        listed = [{**letter.summary(), "state": "recorded"} for letter in letters]
        listed += [
            {**letter.summary(), "state": "pending", "lastSentAt": sent_at.isoformat(), "sends": sends}
            for letter, sent_at, sends in pending
        ]
        click.echo(json.dumps(listed, indent=2))
        click.echo(depth, err=True)
        return
    if not letters and not pending:
        click.echo(f"nothing listed: the dead-letter queue is empty of listable letters; {depth}")
        return
    if letters:
        click.echo(f"{'ID':<40} {'TASK':<22} {'REASON':<18} {'ERROR':<22} {'ATT':>3} {'REDR':>4}  LAST FAILURE")
        for x in letters:
            click.echo(
                f"{x.id:<40} {x.task:<22} {x.reason:<18} {x.error_type:<22} {x.attempts:>3} {x.redrives:>4}  "
                f"{x.last_failure_at}"
            )
    else:
        click.echo("no recorded dead letters")
    if pending:
        click.echo(
            f"pending: {len(pending)} letter(s) in the ledger, not recorded yet (not redrivable until recorded; "
            f"resent after COACHUP_DEADLETTER_RESEND_AFTER_S={settings.deadletter_resend_after_s:g}s)"
        )
        click.echo(f"{'ID':<40} {'TASK':<22} {'REASON':<18} {'ERROR':<22} {'SENDS':>5}  LAST SENT")
        for x, sent_at, sends in pending:
            click.echo(f"{x.id:<40} {x.task:<22} {x.reason:<18} {x.error_type:<22} {sends:>5}  {sent_at.isoformat()}")
    click.echo(depth)


def _depth_line(settings) -> str:
    """`dead letters: 3 (2 stored, 1 waiting in the broker)`: the number `coachup queues`, the ops API and
    the gauge report (`workers.depths`); letters waiting in the broker are on their way to the list."""
    from workers import create_celery
    from workers.depths import read_depths

    try:
        return f"dead letters: {read_depths(create_celery(settings)).dead.describe()}"
    except Exception as exc:  # the broker is down: the stored letters above are still the truth
        return (
            f"dead letters: depth unavailable, broker unreachable ({type(exc).__name__}); stored letters listed above"
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
@click.option("--dry-run", is_flag=True, help="List the ids that would move (and be held back); move nothing.")
@click.option(
    "--include-permanent",
    is_flag=True,
    help="Also redrive letters that died of a `permanent` error (held back by default: they fail again).",
)
@click.option("--rate", type=float, default=None, help="At most R messages per second.")
@click.option("--batch-size", type=int, default=10, show_default=True)
def redrive_cmd(task, error, limit, dry_run, include_permanent, rate, batch_size) -> None:
    """Move dead letters back to their original queues (send first, then remove: a crash loses nothing).

    Letters whose reason is `permanent` stay unless `--include-permanent` or `--error` names what to redrive."""
    from coachup.redrive import redrive
    from workers import create_celery
    from workers.deadletter import redrive_sender

    settings = _settings()
    source = dead_letter_source(settings)
    if dry_run:
        with _reachable():
            report = redrive(
                source,
                lambda _l: None,
                max_redrives=settings.max_redrives,
                task=task,
                error=error,
                limit=limit,
                dry_run=True,
                include_permanent=include_permanent,
            )
        _print_ids("would redrive", report.would_redrive)
        _print_ids("would hold (redrive limit)", report.would_hold)
        _print_ids("kept back (permanent; --include-permanent to redrive)", report.kept_permanent)
        click.echo(json.dumps(report.to_dict()))
        return
    with _reachable():
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
                include_permanent=include_permanent,
                progress=bar.update,
                stop=stop.is_set,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    if report.kept_permanent:
        click.echo(
            f"kept back {len(report.kept_permanent)} permanent letters (pass --include-permanent to redrive them)",
            err=True,
        )
    click.echo(json.dumps(report.to_dict()))
    if report.interrupted:
        click.echo("interrupted: the rest is still in the dead-letter queue; run the same command again", err=True)
        sys.exit(130)


@dlq.command("purge")
@click.option("--task", default=None, help="Only this task (or `prefix.*`).")
@click.option("--error", default=None, help="Only this error type or reason.")
@click.option(
    "--older-than",
    "older",
    default=None,
    help="Only letters whose last failure is older than this (`90s`, `30m`, `12h`, `7d`).",
)
@click.option("--dry-run", is_flag=True, help="List the ids that would be deleted; delete nothing.")
@click.option("--yes", is_flag=True, help="Confirm: delete the matching dead letters for good.")
def purge(task, error, older, dry_run, yes) -> None:
    """Delete dead letters for good (every one, or those matching the filters); they cannot be redriven after."""
    from coachup.redrive import discard, older_than

    cutoff = _cutoff(older) if older else None
    filtered = bool(task or error or cutoff)
    if not yes and not dry_run:
        what = "the matching dead letters" if filtered else "every dead letter"
        raise click.ClickException(f"purge deletes {what} for good; pass --yes to confirm (or --dry-run to list them)")
    source = dead_letter_source(_settings())
    with _reachable():
        if not filtered and not dry_run:
            n = source.purge()
        else:
            letters = [x for x in source.list(task=task, error=error) if cutoff is None or older_than(x, cutoff)]
            if dry_run:
                _print_ids("would purge", [x.id for x in letters])
                click.echo(f"would purge {len(letters)} dead letters")
                return
            n = len(discard(source, letters))
    click.echo(f"purged {n} dead letters")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _cutoff(text: str):
    """`7d` -> now minus seven days (UTC)."""
    from datetime import UTC, datetime, timedelta

    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in _UNITS or not text[:-1].isdigit():
        raise click.BadParameter(f"{text!r}: a number and a unit (s, m, h, d), e.g. 7d", param_hint="--older-than")
    return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])


def _print_ids(label: str, ids: list[str]) -> None:
    """One id a line on stderr (stdout stays the machine-readable summary)."""
    if ids:
        click.echo(f"{label}:", err=True)
        for letter_id in ids:
            click.echo(f"  {letter_id}", err=True)


from .quarantine import quarantine_cmd  # noqa: E402 - a subgroup, attached once `dlq` exists

dlq.add_command(quarantine_cmd)
