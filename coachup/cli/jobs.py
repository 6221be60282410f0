"""`coachup jobs show <id>`: one job's state, its dead letter if any, and the grep that finds its log lines.

Every log line of a job's life carries its `taskId` and `requestId` (the API's lines the `requestId`), so one
`grep -E` over the JSON logs of the API and the workers follows it from intake to its end.
"""

from __future__ import annotations

import json

import click

from .common import _settings, failure

__all__ = ["jobs", "log_grep"]


def log_grep(task_id: str, request_id: str | None) -> str:
    """The shell command that finds a job's log lines in JSON-lines logs (`coachup.logs` writes `"key":"value"`;
    lines written before orjson had `"key": "value"`: both match)."""
    ids = task_id if not request_id or request_id == task_id else f"{task_id}|{request_id}"
    return f'grep -E \'"(taskId|requestId)": ?"({ids})"\' <api and worker logs>'


@click.group()
def jobs() -> None:
    """Jobs: show one."""


@jobs.command("show")
@click.argument("task_id")
def show(task_id: str) -> None:
    """The job (status, requestId, attempts, timestamps, error, deadLetterId) and the grep for its logs."""
    from coachup.deadletters import dead_letter_id
    from coachup.store import create_store
    from workers.brokers import broker_for

    settings = _settings()
    try:
        store = create_store(settings.database_url)
        job = store.get_job(task_id)
    except Exception as exc:
        raise failure(exc, "cannot read the job") from None
    if job is None:
        raise click.ClickException(f"no job {task_id!r} in the store")
    job["deadLetterId"] = dead_letter_id(broker_for(settings).dead_letters(store), job)
    click.echo(json.dumps(job, indent=2))
    click.echo(f"logs: {log_grep(task_id, job.get('requestId'))}")
