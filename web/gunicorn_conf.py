"""gunicorn hooks for `coachup api` (`-c python:web.gunicorn_conf`): multiprocess metrics for N workers.

The master wipes and enables `<metrics root>/api-<port>` before forking any worker (and creates the store
schema once, so the workers do not race on it), and marks each exited worker dead so its live gauges
disappear. `/metrics` in any worker then reads every worker's files.
"""

from __future__ import annotations

__all__ = ["on_starting", "child_exit"]


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


def child_exit(server, worker) -> None:
    from coachup.metrics import multiproc

    if multiproc.active_dir() is not None:
        multiproc.mark_dead(worker.pid)
