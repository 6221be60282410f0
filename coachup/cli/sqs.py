"""`coachup sqs bootstrap` and `coachup queues`: set up SQS, and see every queue's depth on any broker.

`coachup queues` reads `workers.depths.read_depths`, the same report the ops API and the worker's gauges use.
"""

from __future__ import annotations

import json

import click

__all__ = ["register"]


def register(main: click.Group, settings_factory) -> None:
    """Add the commands to the `coachup` group."""

    @main.group()
    def sqs() -> None:
        """Amazon SQS administration."""

    @sqs.command("bootstrap")
    def sqs_bootstrap() -> None:
        """Create every queue and its DLQ (RedrivePolicy), idempotently; print what was created or existed.

        IAM: sqs:GetQueueUrl, sqs:CreateQueue, sqs:GetQueueAttributes, sqs:SetQueueAttributes.
        """
        settings = settings_factory()
        from workers.brokers import broker_for

        try:
            lines = broker_for(settings).bootstrap()
        except NotImplementedError as exc:
            raise click.ClickException(str(exc)) from None
        except Exception as exc:  # botocore's errors: credentials, endpoint, permissions
            raise click.ClickException(f"SQS bootstrap failed: {type(exc).__name__}: {exc}") from None
        for line in lines:
            click.echo(f"{line.action:8} {line.role:5} {line.name}")
        created = sum(1 for line in lines if line.action == "created")
        click.echo(
            f"{created} created, {len(lines) - created} already existed "
            f"(maxReceiveCount {settings.sqs_max_receive_count}, "
            f"visibility timeout {settings.visibility_timeout_s} s)"
        )

    @main.command("queues")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
    def queues(as_json: bool) -> None:
        """Visible, in-flight and dead-letter depth of every queue on the configured broker."""
        settings = settings_factory()
        from workers.app import create_celery
        from workers.depths import read_depths

        from .common import failure

        try:
            report = read_depths(create_celery(settings))
        except Exception as exc:
            raise failure(exc, "cannot read queue depths") from None
        missing = [r.broker_name for r in report.queues if r.visible is None]
        if missing:
            raise click.ClickException(
                f"{len(missing)} of {len(report.queues)} queues do not exist on the {report.broker} broker "
                f"({', '.join(missing)}): create them with `coachup sqs bootstrap`"
            )
        if as_json:
            click.echo(json.dumps(report.as_dict()))
            return
        rows = report.queues
        header = ("queue", "broker name", "visible", "in flight", "dead letter")
        table = [header] + [(r.queue, r.broker_name, _n(r.visible), _n(r.in_flight), _n(r.dead_letter)) for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip())
        click.echo(f"dead letters: {report.dead.describe()}")


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)
