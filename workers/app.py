"""The Celery application factory."""

from __future__ import annotations

import os
import threading

from celery import Celery

from coachup.redaction import Hasher
from coachup.settings import Settings, load_settings
from coachup.store import Store, create_store

__all__ = ["create_celery", "Runtime"]

TASK_MODULES = (
    "workers.tasks.assessments",
    "workers.tasks.interactions",
    "workers.tasks.speech",
    "workers.tasks.deadletters",
    "workers.tasks.summaries",
)
TEST_TASK_MODULES = ("workers.tasks.testing",)  # only with COACHUP_TEST_TASKS=1


class Runtime:
    """What tasks need besides Celery: settings, a per-process store, the hasher."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hasher = Hasher(settings.hash_secret)
        self._store: Store | None = None
        self._store_pid: int | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> Store:
        # engines must not cross a fork: each prefork child builds its own on first use
        pid = os.getpid()
        if self._store is None or self._store_pid != pid:
            with self._lock:
                if self._store is None or self._store_pid != pid:
                    self._store = create_store(self.settings.database_url)
                    self._store_pid = pid
        return self._store


def create_celery(settings: Settings | None = None) -> Celery:
    """A configured Celery app with every queue declared and every task registered."""
    import celeryconfig

    settings = settings or load_settings()
    app = Celery("coachup", set_as_current=False)
    app.conf.update(celeryconfig.celery_config(settings))
    app.coachup = Runtime(settings)  # type: ignore[attr-defined]
    if settings.embedded_broker:
        for folder in (settings.broker_dir, settings.broker_dir / "control"):
            folder.mkdir(parents=True, exist_ok=True)
    from . import signals

    signals.connect(app)
    if settings.broker_kind == "sqs":
        from coachup.sqs.observe import install_observer

        from .metrics_host import SqsMetricsObserver, metrics_for

        install_observer(SqsMetricsObserver(lambda: metrics_for(app)))
    for module in TASK_MODULES + (TEST_TASK_MODULES if settings.test_tasks else ()):
        __import__(module)
        __import__(module, fromlist=["register"]).register(app)
    return app
