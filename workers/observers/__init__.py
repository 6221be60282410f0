"""Observers: classes with one method per hook (dramatiq's middleware shape), wired to Celery's signals and
ours (`workers.signals`) once per app by `Observers(app).connect()`.

Each Celery task hook is dispatched to the observer of the task's job kind (`coachup.jobs`: `observer=`);
state lives in attributes (`TaskState`), not closures. Observers never break work: a receiver that raises is
logged (`observer_error`) and ignored. Registration is idempotent (`dispatch_uid`).
"""

from __future__ import annotations

import functools
import importlib
import logging
import time

from celery import signals as celery_signals

from coachup.jobs import JOBS, kind_of_task
from coachup.logs import flush_all

from .. import metrics_host
from ..signals import dead_lettered, job_requeued, speech_provider_called
from .domain import DeadLetterObserver, HostObserver, RequeueObserver, SpeechObserver
from .tasks import TaskObserver, TaskState

__all__ = ["Observers", "TaskObserver", "TaskState"]

log = logging.getLogger("coachup.worker")


def _load(path: str) -> type[TaskObserver]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _safe(fn):
    @functools.wraps(fn)
    def receiver(*args, **kwargs):
        try:
            fn(*args, **kwargs)
        except Exception:  # observers never break work
            log.warning("signal receiver failed", extra={"event": "observer_error", "receiver": fn.__name__})

    return receiver


def _on_publish(sender=None, headers=None, routing_key=None, **_kw) -> None:
    """Every publish, retries and beat included (one receiver per process: it holds no per-app state)."""
    if headers is None:
        return
    headers["enqueuedAtMs"] = int(time.time() * 1000)
    kind = kind_of_task(str(sender))
    if kind is not None:
        _load(kind.observer).published(str(sender), headers, routing_key)


class Observers:
    """Every observer of one app, and the receivers that route hooks to them."""

    def __init__(self, app) -> None:
        self.app = app
        self.state = TaskState(app, functools.partial(metrics_host.metrics_for, app))
        self.default = TaskObserver(self.state)
        self.by_kind = {k.name: _load(k.observer)(self.state) for k in JOBS}
        self.host = HostObserver(self.state)
        self.speech = SpeechObserver(self.state)
        self.letters = DeadLetterObserver(self.state)
        self.requeue = RequeueObserver(self.state)

    def for_task(self, task) -> TaskObserver | None:
        """The observer of `task`'s job kind; None for another app's task (tests build several per process)."""
        if getattr(task, "app", self.app) is not self.app:
            return None
        kind = kind_of_task(task.name)
        return self.by_kind.get(kind.name, self.default) if kind is not None else self.default

    def _mine(self, sender) -> bool:
        """A domain signal sent by one of this app's tasks (not another app's in the same process)."""
        return getattr(sender, "app", self.app) is self.app

    def _only_mine(self, receiver):
        def filtered(sender=None, **kwargs):
            if self._mine(sender):
                receiver(sender=sender, **kwargs)

        return filtered

    # ---- Celery receivers ---------------------------------------------------------------------------------
    def _received(self, sender=None, request=None, **_kw):
        if observer := self.for_task(request.task):
            observer.on_received(request)

    def _prerun(self, sender=None, task_id=None, task=None, **_kw):
        if observer := self.for_task(task):
            observer.on_prerun(task, task_id)

    def _postrun(self, sender=None, task_id=None, task=None, state=None, **_kw):
        try:
            if observer := self.for_task(task):
                observer.on_postrun(task, task_id, state)
        finally:
            # a task's lines are written when it ends (one write for the task, not one per line): whoever sees
            # the job's row done (an operator's `jobs show`, a drill counting runs) finds its lines in the log
            flush_all()

    def _retry(self, sender=None, request=None, reason=None, **_kw):
        if observer := self.for_task(sender):
            observer.on_retry(sender, request, reason)

    def _failure(self, sender=None, task_id=None, exception=None, **_kw):
        if observer := self.for_task(sender):
            observer.on_failure(sender, task_id, exception)

    def connect(self) -> None:
        """Wire every receiver for this app (idempotent)."""
        uid = f"coachup-{id(self.app)}"
        host = self.host
        wiring = [
            (celery_signals.task_received, self._received, "received"),
            (celery_signals.task_prerun, self._prerun, "prerun"),
            (celery_signals.task_postrun, self._postrun, "postrun"),
            (celery_signals.task_retry, self._retry, "retry"),
            (celery_signals.task_failure, self._failure, "failure"),
            (celery_signals.setup_logging, lambda **_kw: host.on_setup_logging(), "log"),
            (celery_signals.worker_init, lambda **_kw: host.on_worker_init(), "winit"),
            (celery_signals.worker_ready, lambda **_kw: host.on_worker_ready(), "wready"),
            (celery_signals.worker_shutdown, lambda **_kw: host.on_worker_shutdown(), "wshutdown"),
            (celery_signals.worker_process_init, lambda **_kw: host.on_child_init(), "cinit"),
            (celery_signals.worker_process_shutdown, lambda pid=None, **_kw: host.on_child_shutdown(pid), "cshutdown"),
            (
                speech_provider_called,
                self._only_mine(lambda sender=None, outcome=None, **_kw: self.speech.on_speech(outcome)),
                "speech",
            ),
            (
                dead_lettered,
                self._only_mine(lambda sender=None, letter=None, **_kw: self.letters.on_dead_lettered(letter)),
                "deadlettered",
            ),
            (
                job_requeued,
                lambda sender=None, kind="", queue="", headers=None, idle_s=0.0, reason="message_missing", **_kw: (
                    self.requeue.on_job_requeued(sender, kind, queue, headers or {}, idle_s, reason)
                ),
                "requeued",
            ),
        ]
        for name, observer in self.by_kind.items():
            for i, (signal, receiver) in enumerate(observer.subscriptions()):
                wiring.append((signal, self._only_mine(receiver), f"{name}-{i}"))
        for signal, receiver, key in wiring:
            signal.connect(_safe(receiver), weak=False, dispatch_uid=f"{uid}-{key}")
        # one publish receiver per process: several apps must not log one publish twice
        celery_signals.before_task_publish.connect(_safe(_on_publish), weak=False, dispatch_uid="coachup-publish")
