"""`TaskObserver`: one method per Celery task hook, for one job kind; the generic logs and metrics.

A kind with events of its own subclasses it (`assessment.py`) and overrides the `started` / `succeeded` /
`retried` / `failed` / `published` points; the Celery hooks themselves are the same for every kind.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable

from coachup import context
from coachup.context import RequestContext
from coachup.logs import log_event

from ..headers import request_headers
from ..telemetry import FailedOnce, LabelCache, TaskBook, queue_of

__all__ = ["TaskState", "TaskObserver", "Run"]

log = logging.getLogger("coachup.worker")
_STATUS = {"SUCCESS": "succeeded", "RETRY": "retried", "FAILURE": "failed"}


class TaskState:
    """Per-process bookkeeping shared by every kind's observer of one app."""

    def __init__(self, app, metrics: Callable) -> None:
        self.app = app
        self.settings = app.coachup.settings
        self.broker = app.coachup.broker
        self.metrics = metrics  # zero-argument: this process's `Metrics`
        self.book = TaskBook()  # task id -> queue (main: from task_received; child: from prerun)
        self.failed = FailedOnce()  # a hard time limit sends task_failure twice in the main process
        self.child = LabelCache(metrics)  # per-task metric children, bound once per process
        self.started: dict[str, float] = {}
        self.tokens: dict[str, contextvars.Token] = {}


class Run:
    """What the `started` point knows about one run."""

    def __init__(self, task, queue: str, headers: dict) -> None:
        self.task = task
        self.queue = queue
        enqueued = headers.get("enqueuedAtMs")
        self.latency_ms = (
            max(0, int(time.time() * 1000) - int(enqueued)) if isinstance(enqueued, (int, float)) else None
        )
        self.delivery = getattr(task.request, "delivery_info", None) or {}
        self.attempt = task.request.retries + 1
        self.first_attempt = task.request.retries == 0


class TaskObserver:
    """Celery task hooks of one kind: counters, timings, context binding, and the generic log events."""

    def __init__(self, state: TaskState) -> None:
        self.state = state

    # ---- Celery hooks (called by `workers.observers.Observers`) ------------------------------------------
    def on_received(self, request) -> None:
        s = self.state
        s.failed.forget(request.id)
        queue = s.book.remember(request.id, queue_of(getattr(request, "delivery_info", None) or {}))
        s.child("tasks_total", request.name, queue, "received").inc()

    def on_prerun(self, task, task_id: str) -> None:
        s = self.state
        s.failed.forget(task_id)  # a new run of this task id (retry or redelivery): its failure counts again
        headers = request_headers(task.request)
        # taskId and requestId then ride on every log line of this run (`coachup jobs show` greps for them)
        s.tokens[task_id] = context.bind(RequestContext.from_headers(headers).with_(taskId=task_id))
        s.started[task_id] = time.monotonic()
        run = Run(task, s.book.remember(task_id, queue_of(getattr(task.request, "delivery_info", None) or {})), headers)
        s.child("tasks_total", task.name, run.queue, "started").inc()
        s.child("tasks_in_progress", task.name, run.queue).inc()
        if run.latency_ms is not None and run.first_attempt:
            s.child("task_queue_wait_seconds", task.name, run.queue).observe(run.latency_ms / 1000)
        self.started(run)

    def on_postrun(self, task, task_id: str, state: str) -> None:
        s = self.state
        began = s.started.pop(task_id, None)
        total_ms = int((time.monotonic() - began) * 1000) if began is not None else None
        queue = s.book.get(task_id)
        s.child("tasks_in_progress", task.name, queue).dec()
        status = _STATUS.get(state) or str(state).lower()
        if total_ms is not None:
            s.child("task_runtime_seconds", task.name, queue, status).observe(total_ms / 1000)
        if state == "SUCCESS":
            s.child("tasks_total", task.name, queue, "succeeded").inc()
            self.succeeded(task, total_ms)
        if state != "RETRY":
            s.book.forget(task_id)
        token = s.tokens.pop(task_id, None)
        if token is not None:
            context.unbind(token)

    def on_retry(self, task, request, reason) -> None:
        exc = getattr(reason, "exc", None)
        when = getattr(reason, "when", None)
        backoff_ms = int(when * 1000) if isinstance(when, (int, float)) else None
        self.state.metrics().tasks_total.labels(task.name, self.state.book.get(request.id), "retried").inc()
        self.retried(task, request.retries + 1, backoff_ms, getattr(exc, "type", type(exc).__name__))

    def on_failure(self, task, task_id: str, exception) -> None:
        if not self.state.failed.first(task_id):
            return
        self.state.metrics().tasks_total.labels(task.name, self.state.book.get(task_id), "failed").inc()
        self.failed(task, getattr(exception, "type", type(exception).__name__))

    # ---- what a kind may say differently ----------------------------------------------------------------
    def subscriptions(self) -> list:
        """(signal, receiver) pairs of the kind's own domain signals (`workers.signals`)."""
        return []

    def started(self, run: Run) -> None:
        log_event(
            log,
            "task_start",
            task=run.task.name,
            queue=run.delivery.get("routing_key"),
            enqueueLatencyMs=run.latency_ms,
            attempt=run.attempt,
        )

    def succeeded(self, task, total_ms: int | None) -> None:
        log_event(log, "task_complete", task=task.name, total_ms=total_ms)

    def retried(self, task, attempt: int, backoff_ms: int | None, error_type: str) -> None:
        log_event(
            log,
            "task_retry",
            logging.WARNING,
            task=task.name,
            attempt=attempt,
            backoff_ms=backoff_ms,
            error={"type": error_type},
        )

    def failed(self, task, error_type: str) -> None:
        log_event(log, "task_failure", logging.ERROR, task=task.name, error={"type": error_type})

    @classmethod
    def published(cls, task_name: str, headers: dict, routing_key: str | None) -> None:
        """A message of this kind was published (any process: API, scheduler, a retry)."""
