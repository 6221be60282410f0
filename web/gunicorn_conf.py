"""gunicorn settings and hooks for `coachup api` (`-c python:web.gunicorn_conf`).

Request limits: the front end's proxy forwards every browser header, cookies included, so one header may be
many KB. gunicorn's defaults (8190 bytes per header field) would refuse a 16 KB cookie with an HTML page;
here a field may reach 32 KiB (`web.hooks.MAX_HEADER_BYTES` caps the total at 32 KiB with a JSON 431),
and what gunicorn still refuses is answered in JSON by `web.gunicorn_worker.JsonErrorWorker`.

Hooks: the master wipes and enables `<metrics root>/api-<port>` before forking any worker (and creates the
store schema once, so the workers do not race on it), and marks each exited worker dead so its live gauges
disappear. `/metrics` in any worker then reads every worker's files.

Logs: gunicorn's own lines ("Listening at", "Booting worker", a worker timeout) are written by coachup's
formatter as service `api` (`logconfig_dict`): JSON lines like the API's, or console lines `api[pid]`.
"""

from __future__ import annotations

__all__ = [
    "on_starting",
    "post_worker_init",
    "child_exit",
    "worker_class",
    "limit_request_line",
    "limit_request_fields",
    "limit_request_field_size",
    "logconfig_dict",
]

# gthread (threads hold open chat streams, docs/chat.md) answering gunicorn's own errors in JSON
worker_class = "web.gunicorn_worker.JsonErrorWorker"
limit_request_line = 8190  # gunicorn's ceiling; a longer URL gets a JSON 414
limit_request_fields = 100  # header fields per request (gunicorn's default)
# one header field (a browser's whole Cookie header); the header block is bounded by fields x this size
limit_request_field_size = 32 * 1024


def _log_formatter():
    from coachup.logs import formatter
    from coachup.settings import load_settings

    settings = load_settings()
    return formatter("api", settings.env, settings.log_format)


# gunicorn's error log (its own lines) through coachup's formatter, on stdout like every other log line
logconfig_dict = {
    "root": {"level": "INFO", "handlers": []},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["coachup"], "propagate": False}},
    "handlers": {"coachup": {"class": "logging.StreamHandler", "formatter": "coachup", "stream": "ext://sys.stdout"}},
    "formatters": {"coachup": {"()": _log_formatter}},
}


def _port(server) -> str:
    binds = getattr(server.cfg, "bind", None) or ["8000"]
    return str(binds[0]).rsplit(":", 1)[-1] or "8000"


def on_starting(server) -> None:
    from coachup.metrics import multiproc
    from coachup.settings import load_settings

    settings = load_settings()
    multiproc.enable(settings.metrics_root / f"api-{_port(server)}", wipe=True)
    from coachup.store import create_store

    # the schema once, here: N workers creating it at the same moment race on a fresh SQLite file
    create_store(settings.database_url)


def post_worker_init(worker) -> None:
    from web.body_deadline import configure

    configure(worker.cfg.timeout)  # a body must arrive within --timeout (gthread no longer enforces it)


def worker_exit(server, worker) -> None:
    from workers.relay import stop_relays

    stop_relays()  # this worker's outbox relay thread ends between passes; its unpublished rows stay in the outbox


def child_exit(server, worker) -> None:
    from coachup.metrics import multiproc

    if multiproc.active_dir() is not None:
        multiproc.mark_dead(worker.pid)
