"""gunicorn hooks for `coachup api` (`-c python:web.gunicorn_conf`): multiprocess metrics for N workers.

The master wipes and enables `<metrics root>/api-<port>` before forking any worker (and creates the store
schema once, so the workers do not race on it), and marks each exited worker dead so its live gauges
disappear. `/metrics` in any worker then reads every worker's files.
"""

from __future__ import annotations

__all__ = ["on_starting", "post_worker_init", "child_exit", "json_error"]

_REASONS = {400: "bad_request", 414: "uri_too_long", 431: "headers_too_large", 501: "not_implemented"}


def _port(server) -> str:
    binds = getattr(server.cfg, "bind", None) or ["8000"]
    return str(binds[0]).rsplit(":", 1)[-1] or "8000"


def json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own answer to a request it cannot parse (a request line over 8190 bytes, bad headers), as the
    API's JSON error body instead of gunicorn's HTML page. `mesg` is gunicorn's text: sizes and names only."""
    import json

    from gunicorn import util

    body = json.dumps({"error": {"type": _REASONS.get(status_int, "bad_request"), "message": mesg[:200] or reason}})
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, (head + body).encode("latin-1", "replace"))


def on_starting(server) -> None:
    from gunicorn import util

    from coachup.metrics import multiproc

    util.write_error = json_error  # every worker forks after this: their parse errors answer JSON too
    from coachup.settings import load_settings

    settings = load_settings()
    multiproc.enable(settings.metrics_root / f"api-{_port(server)}", wipe=True)
    from coachup.store import create_store

    # the schema once, here: N workers creating it at the same moment race on a fresh SQLite file
    create_store(settings.database_url)


def post_worker_init(worker) -> None:
    from web.body_deadline import configure

    configure(worker.cfg.timeout)  # a body must arrive within --timeout (gthread no longer enforces it)


def child_exit(server, worker) -> None:
    from coachup.metrics import multiproc

    if multiproc.active_dir() is not None:
        multiproc.mark_dead(worker.pid)
