"""`coachup` command line: the composition root that starts the API, workers, scheduler and Flower.

Commands import the Celery and Flask adapters lazily, so `coachup --help` stays instant and the pure
core (`coachup.*` outside this package) never depends on them.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

import click

from coachup.jobs import worker_queues

from .common import _broker, _require_local_server, _settings, command_env, export_env, failure
from .envfile import EnvFileError, read_env_file

__all__ = ["main"]

ALL_QUEUES = ",".join(worker_queues())


def _version() -> str:
    try:
        return metadata.version("coachup")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


class _OneLineErrors(click.Group):
    """Any unexpected error of a command becomes one line naming what failed (`--debug`: the traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise failure(exc) from None


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", "-V", prog_name="coachup", message="%(prog)s %(version)s")
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read a deployment's settings (KEY=VALUE lines); variables set in the shell win.",
)
@click.option("--debug", is_flag=True, help="Show the traceback of an error instead of one line.")
# `coachup run` starts its children with this: it printed the broker and store once already
@click.option("--no-banner", is_flag=True, hidden=True)
@click.pass_context
def main(ctx: click.Context, env_file: Path | None, debug: bool, no_banner: bool) -> None:
    """Coach Up jobs: API, Celery workers, scheduler and Flower.

    Every command first prints, on stderr, the broker and store it uses.
    """
    ctx.meta["coachup.debug"] = debug
    ctx.meta["coachup.announced"] = no_banner
    if env_file is not None:
        try:
            values = read_env_file(env_file)
        except EnvFileError as exc:
            raise click.ClickException(str(exc)) from None
        # the shell wins, but an empty variable counts as unset (as everywhere in `coachup.settings`)
        ctx.meta["coachup.env"] = {**values, **{k: v for k, v in os.environ.items() if v}}


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("-Q", "--queues", default=ALL_QUEUES, show_default=True, help="Queues to consume.")
@click.pass_context
def worker(ctx: click.Context, queues: str) -> None:
    """A Celery worker (extra options go to `celery worker`, e.g. `-c 2 -n w1@%h`)."""
    export_env()
    settings = _settings()
    _require_local_server(settings)
    _require_free_metrics_port(settings)
    # exec `celery worker` itself: Celery's programmatic entry points drop the exit code, and a worker that
    # cannot start (e.g. SQS queues nobody bootstrapped) must exit non-zero for its process manager
    argv = [sys.executable, "-m", "celery", "-A", "workers", *_quiet(settings), "worker", "-Q", queues, *ctx.args]
    os.execv(sys.executable, argv)


def _quiet(settings) -> list[str]:
    """`-q` (no Celery banner) when this process logs JSON: stdout then carries JSON lines only, as production's
    log shipper expects; the console format (dev on a terminal) keeps the banner."""
    from coachup.logs import resolve_format

    return ["-q"] if resolve_format(settings.log_format, settings.env, sys.stdout) == "json" else []


def _require_free_metrics_port(settings) -> None:
    """A second worker on a host would lose its metrics endpoint (and its liveness gauges): refuse instead.

    With `auto` the worker claims the first free port from the base itself; refuse only when none is free."""
    import socket

    from coachup.settings import AUTO_PORT_SPAN

    port, host = settings.worker_metrics_port, settings.worker_metrics_host
    if not port:
        return
    candidates = range(port, port + AUTO_PORT_SPAN) if settings.worker_metrics_auto else (port,)
    for candidate in candidates:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            try:
                probe.bind((host, candidate))
                return
            except OSError:
                continue
    if settings.worker_metrics_auto:
        raise click.ClickException(
            f"COACHUP_WORKER_METRICS_PORT=auto: every port from {port} to {port + AUTO_PORT_SPAN - 1} on {host} "
            "is taken; give a free base (auto:<base>) or 0 to serve no metrics"
        )
    raise click.ClickException(
        f"COACHUP_WORKER_METRICS_PORT {port} on {host} is taken (another worker on this host?): give "
        f"each worker its own, e.g. COACHUP_WORKER_METRICS_PORT={port + 1}, or auto to take the next free "
        "one, or 0 to serve no metrics"
    )


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def beat(ctx: click.Context) -> None:
    """The scheduler (closes idle interaction groups; run exactly one)."""
    export_env()
    settings = _settings()
    _require_local_server(settings)
    from workers import get_app

    from .beat_probe import install_pulse

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    install_pulse(settings)
    get_app().start([*_quiet(settings), "beat", "--loglevel", settings.log_level, *ctx.args])


@main.group()
def probe() -> None:
    """Readiness/liveness probes of processes without an HTTP endpoint (exit 0: healthy)."""


@probe.command("beat")
def probe_beat() -> None:
    """The scheduler published a tick within three sweep intervals (its pulse file under the data dir)."""
    from coachup.settings import SettingsError, load_settings

    from .beat_probe import max_pulse_age_s, pulse_age_s, pulse_path

    try:
        # no banner, no refusal: a probe runs every few seconds inside the pod; `--env-file` is honoured
        settings = load_settings(command_env())
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    age, limit = pulse_age_s(settings), max_pulse_age_s(settings)
    if age is None:
        raise click.ClickException(f"beat has not published yet ({pulse_path(settings)} missing)")
    if age > limit:
        raise click.ClickException(f"beat last published {age:.0f} s ago (limit {limit:.0f} s)")
    click.echo(f"beat published {age:.0f} s ago")


@main.command()
@click.option("--workers", "n_workers", type=int, default=None, help="gunicorn workers (COACHUP_API_WORKERS).")
@click.option("--threads", "n_threads", type=int, default=None, help="threads per worker (COACHUP_API_THREADS).")
def api(n_workers: int | None, n_threads: int | None) -> None:
    """The Flask API under gunicorn on COACHUP_API_HOST:COACHUP_API_PORT."""
    export_env()
    settings = _settings()
    n = n_workers or settings.api_workers
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(n),
        # threaded workers (gthread, answering gunicorn's own errors in JSON): an open chat stream holds one
        # thread, not a whole process, so hundreds of streams and intake share the API (docs/chat.md)
        "--worker-class",
        "web.gunicorn_worker.JsonErrorWorker",
        "--threads",
        str(n_threads or settings.api_threads),
        "--bind",
        f"{settings.api_host}:{settings.api_port}",
        "--graceful-timeout",
        "20",
        "-c",
        "python:web.gunicorn_conf",  # multiprocess metrics: wipe at start, mark dead workers
        "--error-logfile",
        "-",
        "web.wsgi:app",
    ]
    os.execv(sys.executable, argv)


@main.command()
@click.option("--no-auth", is_flag=True, help="Start without basic auth (local debugging only).")
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default COACHUP_FLOWER_PORT.")
def flower(no_auth: bool, address: str, port: int | None) -> None:
    """Flower against the configured broker, behind basic auth from FLOWER_BASIC_AUTH."""
    export_env()
    settings = _settings()
    if not _broker(settings).has_events:
        raise click.ClickException(
            "Flower cannot see workers, tasks or queues on SQS (SQS has no worker events "
            "or remote control); use `coachup queues` and the coachup_sqs_* metrics"
        )
    if not settings.flower_basic_auth and not no_auth:
        raise click.ClickException(
            "FLOWER_BASIC_AUTH is not set (user:password); pass --no-auth to run Flower without credentials on purpose"
        )
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers",
        "flower",
        f"--address={address}",
        f"--port={port or settings.flower_port}",
        "--purge_offline_workers=60",
    ]
    if settings.flower_basic_auth and not no_auth:
        os.environ["FLOWER_BASIC_AUTH"] = settings.flower_basic_auth  # read by Flower, never on argv
    os.execv(sys.executable, argv)


@main.command()
def run() -> None:
    """Everything at once: the embedded broker (when no broker is configured), API, one worker on every queue,
    the scheduler and Flower. Ctrl-C stops all, the embedded broker last."""
    export_env()
    from .supervisor import run_all

    settings = _settings()
    sys.exit(run_all(settings, _broker(settings)))


@main.command()
def broker() -> None:
    """Run the embedded broker alone, in the foreground (to start `coachup api`/`worker`/`beat` by hand)."""
    export_env()
    from .supervisor import serve_broker

    settings = _settings()
    sys.exit(serve_broker(settings, _broker(settings)))


@main.group()
def db() -> None:
    """Store administration."""


@db.command("init")
def db_init() -> None:
    """Create the tables (idempotent) and seed the skills catalogue."""
    from coachup.store import create_store

    settings = _settings()
    try:
        create_store(settings.database_url)
    except Exception as exc:  # unreachable server, bad credentials, missing database
        raise failure(exc, "store initialisation failed") from None
    click.echo(f"store ready: {settings.database_url.split('://', 1)[0]} schema up to date")


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema's versioned migration steps (`coachup/store/migrate.py`); idempotent."""
    from coachup.store import create_store
    from coachup.store.migrate import SCHEMA_VERSION

    store = create_store(_settings().database_url)
    store.engine.dispose()
    click.echo(f"store at schema version {SCHEMA_VERSION}")


def _register_sqs() -> None:
    from .sqs import register

    register(main, _settings)


_register_sqs()


from .dlq import dlq as _dlq  # noqa: E402  (click group defined in its own module)

main.add_command(_dlq)

from .jobs import jobs as _jobs  # noqa: E402

main.add_command(_jobs)
