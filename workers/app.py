"""The Celery application factory."""

from __future__ import annotations

import importlib
import os
import threading

from celery import Celery

from coachup.jobs import task_modules
from coachup.logs import silence_known_noise
from coachup.redaction import Hasher
from coachup.settings import Settings, load_settings
from coachup.store import Store, create_store

from .brokers import Broker, broker_for

__all__ = ["create_celery", "Runtime"]


class Runtime:
    """What tasks need besides Celery: settings, the chosen broker, a per-process store, the hasher."""

    def __init__(self, settings: Settings, broker: Broker) -> None:
        self.settings = settings
        self.broker = broker
        self.hasher = Hasher(settings.hash_secret)
        self._store: Store | None = None
        self._store_pid: int | None = None
        self._lock = threading.Lock()
        self._lock_pid = os.getpid()

    @property
    def store(self) -> Store:
        # engines must not cross a fork: each prefork child builds its own on first use
        pid = os.getpid()
        if self._store is None or self._store_pid != pid:
            if self._lock_pid != pid:
                # a child forked while a thread of the parent (the depth sampler) held the lock would wait for
                # ever on the copy it inherited: a fresh child (one thread) takes a fresh lock
                self._lock, self._lock_pid = threading.Lock(), pid
            with self._lock:
                if self._store is None or self._store_pid != pid:
                    self._store = create_store(self.settings.database_url)
                    self._store_pid = pid
        return self._store


def create_celery(settings: Settings | None = None) -> Celery:
    """A configured Celery app with every queue declared and every job kind's task registered."""
    import celeryconfig

    from .observers import Observers

    settings = settings or load_settings()
    silence_known_noise(settings.env)  # every worker, beat and Flower process loads this app first
    broker = broker_for(settings)  # the one choice of broker; everything below asks it
    app = Celery("coachup", set_as_current=False)
    app.conf.update(celeryconfig.celery_config(settings, broker))
    app.coachup = Runtime(settings, broker)
    Observers(app).connect()
    broker.install(app)
    for module in task_modules(test_tasks=settings.test_tasks):
        importlib.import_module(module).register(app)
    return app
