"""`coachup dlq quarantine`: the broker messages no worker could decode (`workers.quarantine`).

They are not dead letters (there is no task to redrive: their bytes could not be read), so they are only
listed, shown (raw bytes, base64, on request) and purged. On SQS there is no quarantine list: an unreadable
message is left to the queue's RedrivePolicy and lands in its DLQ.
"""

from __future__ import annotations

import base64
import json

import click

from .common import _broker, _settings

__all__ = ["quarantine_cmd"]


def _with_client(fn):
    """Run `fn(client)` on the configured broker's quarantine list; one line when there is none or it is down."""
    from workers import create_celery

    settings = _settings()
    app = create_celery(settings)
    try:
        with _broker(settings).quarantine_client(app) as client:
            if client is None:
                raise click.ClickException("this broker keeps no quarantine list (SQS: see each queue's DLQ)")
            return fn(client)
    except click.ClickException:
        raise
    except Exception as exc:
        raise click.ClickException(f"quarantine unreachable ({type(exc).__name__}); is the broker running?") from None


@click.group("quarantine")
def quarantine_cmd() -> None:
    """Messages no worker could decode: ls, show, purge."""


@quarantine_cmd.command("ls")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--raw", is_flag=True, help="Include each message's bytes (base64). They may hold user text.")
def ls(limit, raw) -> None:
    """The newest quarantined messages as JSON lines: time, queue, reason, size, digest."""
    from workers.quarantine import quarantined

    entries = _with_client(lambda client: quarantined(client, limit))
    if not entries:
        click.echo("the quarantine is empty", err=True)
    for entry in entries:
        doc = entry.summary()
        if raw:
            doc["raw"] = base64.b64encode(entry.raw).decode("ascii")
        click.echo(json.dumps(doc))


@quarantine_cmd.command("purge")
@click.option("--yes", is_flag=True, help="Confirm: delete every quarantined message for good.")
def purge(yes) -> None:
    """Delete every quarantined message."""
    from workers.quarantine import purge_quarantine

    if not yes:
        raise click.ClickException("purge deletes every quarantined message for good; pass --yes to confirm")
    n = _with_client(purge_quarantine)
    click.echo(f"purged {n} quarantined messages")
