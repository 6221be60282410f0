"""What every `coachup` command starts from: settings (refused with one line when unsafe), the broker, and
the line on stderr that says which broker and store the command uses.

An on-call engineer in a shell without the service's environment once read "the dead-letter queue is empty"
from a SQLite file nobody uses. So every command names what it reads before anything else, and outside
`dev` (and the suite's `test`) a command refuses to fall back to a dev default. A leaf of the CLI package
(the command modules import it; it imports none of them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import click

from coachup.redaction import scrub
from coachup.settings import SettingsError, load_settings

__all__ = [
    "_settings",
    "_broker",
    "_require_local_server",
    "LOCAL_ENVS",
    "DEV_DEFAULTS",
    "command_env",
    "export_env",
    "failure",
    "redact_url",
]

#: environments where falling back to a dev default is expected (`test`: the suite's own environment)
LOCAL_ENVS = ("dev", "test")

#: variables whose absence means a dev default: (variable, what the command would use instead)
DEV_DEFAULTS = (
    ("COACHUP_BROKER_URL", "the embedded broker under the data dir"),
    ("COACHUP_DATABASE_URL", "a SQLite file under the data dir"),
)

_STORE_ERRORS = ("sqlalchemy", "psycopg", "sqlite3")
_BROKER_ERRORS = ("redis", "kombu", "botocore", "boto3", "celery", "amqp", "valkey")


def _meta() -> dict:
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().meta if ctx is not None else {}


def command_env() -> Mapping[str, str]:
    """The environment this command reads: the process environment over `--env-file`'s values."""
    return _meta().get("coachup.env") or os.environ


def export_env() -> None:
    """Put `--env-file`'s values into the process environment (for commands that exec or fork a process)."""
    os.environ.update({k: v for k, v in command_env().items() if not os.environ.get(k)})


def redact_url(url: str) -> str:
    """`url` with its credentials replaced by `***` (for a line an operator reads or pastes)."""
    return scrub(url, limit=300)


def _settings():
    """Settings of this command, refused with one line when unsafe; announces the broker and store on stderr."""
    env = command_env()
    try:
        settings = load_settings(env)
        broker = _broker(settings)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    _refuse_dev_defaults(env, settings.env)
    meta = _meta()
    meta["coachup.settings"] = settings
    meta["coachup.broker"] = broker
    if not meta.get("coachup.announced"):
        meta["coachup.announced"] = True
        click.echo(
            f"coachup: env {settings.env}; broker {broker.describe()}; store {redact_url(settings.database_url)}",
            err=True,
        )
    return settings


def _refuse_dev_defaults(env: Mapping[str, str], name: str) -> None:
    if name in LOCAL_ENVS:
        return
    for variable, fallback in DEV_DEFAULTS:
        if not env.get(variable, "").strip():
            raise click.ClickException(
                f"{variable} is not set and COACHUP_ENV={name}: refusing to use {fallback} "
                "(set it, or point the CLI at the deployment with `coachup --env-file PATH`)"
            )


def _broker(settings):
    """The configured broker (`workers.brokers`); a missing optional package is one line with its pip command."""
    from workers.brokers import MissingExtra, broker_for

    try:
        return broker_for(settings)
    except MissingExtra as exc:
        raise click.ClickException(str(exc)) from None


def _require_local_server(settings) -> None:
    """On the embedded broker, refuse to start a part that would wait for ever on a server nobody runs."""
    server = _broker(settings).local_server()
    if server is not None and not server.running():
        raise click.ClickException(
            "the embedded broker is not running: start everything with `make run` (`coachup run`), or run "
            "`coachup broker` in another shell first (or set COACHUP_BROKER_URL)"
        )


def failure(exc: BaseException, doing: str = "") -> click.ClickException:
    """One line for an unexpected error: what failed, and the endpoint and variable it came from.

    With `coachup --debug` the caller's exception is re-raised instead, traceback and all.
    """
    meta = _meta()
    if meta.get("coachup.debug"):
        raise exc
    first = (str(exc).strip().splitlines() or [""])[0]
    text = f"{type(exc).__name__}: {scrub(first, limit=200)}" if first else type(exc).__name__
    where = _endpoint(exc, meta.get("coachup.settings"), meta.get("coachup.broker"))
    prefix = f"{doing}: " if doing else ""
    return click.ClickException(f"{prefix}{text}{where} (--debug shows the traceback)")


def _endpoint(exc: BaseException, settings, broker) -> str:
    chain = [type(e).__module__ for e in (exc, exc.__cause__, exc.__context__) if e is not None]
    if settings is None:
        return ""
    if any(m.startswith(_STORE_ERRORS) for m in chain):
        return f"; store {redact_url(settings.database_url)} (COACHUP_DATABASE_URL)"
    if broker is not None and (any(m.startswith(_BROKER_ERRORS) for m in chain) or isinstance(exc, OSError)):
        return f"; broker {broker.describe()} (COACHUP_BROKER_URL)"
    return ""
