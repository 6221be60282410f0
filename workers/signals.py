"""The one module that turns a task's life into log events and metrics (Celery signals + domain signals).

Receivers are observers: each swallows its own errors (a logging bug never fails a job) and registration
is idempotent (`dispatch_uid`).
"""

from __future__ import annotations

import functools
import logging
import os
import time

from celery import signals as celery_signals

from coachup import context
from coachup.context import RequestContext
from coachup.logs import configure_logging, log_event

from . import metrics_host
from .base import request_headers
from .events import assessment_scored, dead_lettered, job_requeued, skill_assessed, speech_provider_called
from .telemetry import FailedOnce, LabelCache, TaskBook, provider_span, queue_of, span_fields

__all__ = ["connect"]

log = logging.getLogger("coachup.worker")
_ASSESS = "assessments.run"
_STATUS = {"SUCCESS": "succeeded", "RETRY": "retried", "FAILURE": "failed"}
_started: dict[str, float] = {}
_tokens: dict[str, object] = {}


def _observer(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            fn(*args, **kwargs)
        except Exception:  # observers never break work
            log.warning("signal receiver failed", extra={"event": "observer_error", "receiver": fn.__name__})

    return wrapper


def connect(app) -> None:
    """Wire every receiver for `app` (idempotent)."""
    settings = app.coachup.settings
    broker_kind = settings.broker_kind
    metrics = functools.partial(metrics_host.metrics_for, app)
    _book = TaskBook()  # task id -> queue, per process (main: from task_received; child: from prerun)
    _failed = FailedOnce()  # a hard time limit sends task_failure twice in the main process
    child = LabelCache(metrics)  # the per-task metric children, bound once per process

    @_observer
    def on_setup_logging(**_kw):
        configure_logging("worker", settings.env, settings.log_level)

    @_observer
    def on_prerun(sender=None, task_id=None, task=None, **_kw):
        _failed.forget(task_id)  # a new run of this task id (retry or redelivery): its failure counts again
        headers = request_headers(task.request)
        ctx = RequestContext.from_headers(headers)
        _tokens[task_id] = context.bind(ctx)
        _started[task_id] = time.monotonic()
        enqueued = headers.get("enqueuedAtMs")
        latency = max(0, int(time.time() * 1000) - int(enqueued)) if isinstance(enqueued, (int, float)) else None
        delivery = getattr(task.request, "delivery_info", None) or {}
        queue = _book.remember(task_id, queue_of(delivery))
        child("tasks_total", task.name, queue, "started").inc()
        child("tasks_in_progress", task.name, queue).inc()
        first_attempt = task.request.retries == 0
        if latency is not None and first_attempt:
            child("task_queue_wait_seconds", task.name, queue).observe(latency / 1000)
        if task.name == _ASSESS:
            if latency is not None and first_attempt:
                metrics().assessments_enqueue_latency_seconds.observe(latency / 1000)
            depth = None if broker_kind == "sqs" else _queue_depth(queue)
            log_event(
                log,
                "assessments_dequeue",
                workerIndex=_worker_index(),
                queueDepth=depth,
                enqueueLatencyMs=latency,
                provider=broker_kind,
                attempt=task.request.retries + 1,
                redelivered=bool(delivery.get("redelivered")),
            )
            log_event(log, "assessments_job_start", rubricVersion=_rubric_version())
        else:
            log_event(
                log,
                "task_start",
                task=task.name,
                queue=delivery.get("routing_key"),
                enqueueLatencyMs=latency,
                attempt=task.request.retries + 1,
            )

    @_observer
    def on_postrun(sender=None, task_id=None, task=None, state=None, **_kw):
        started = _started.pop(task_id, None)
        total_ms = int((time.monotonic() - started) * 1000) if started is not None else None
        queue = _book.get(task_id)
        child("tasks_in_progress", task.name, queue).dec()
        status = _STATUS.get(state) or str(state).lower()
        if total_ms is not None:
            child("task_runtime_seconds", task.name, queue, status).observe(total_ms / 1000)
        if state == "SUCCESS":
            child("tasks_total", task.name, queue, "succeeded").inc()
        if task.name == _ASSESS and state == "SUCCESS":
            m = metrics()
            m.assessments_jobs_total.labels("success").inc()
            if total_ms is not None:
                m.assessment_job_seconds.labels(_rubric_version()).observe(total_ms / 1000)
            log_event(log, "assessments_job_complete", rubricVersion=_rubric_version(), total_ms=total_ms)
        elif state == "SUCCESS":
            log_event(log, "task_complete", task=task.name, total_ms=total_ms)
        if state != "RETRY":
            _book.forget(task_id)
        token = _tokens.pop(task_id, None)
        if token is not None:
            context.unbind(token)

    @_observer
    def on_retry(sender=None, request=None, reason=None, **_kw):
        exc = getattr(reason, "exc", None)
        when = getattr(reason, "when", None)
        backoff_ms = int(when * 1000) if isinstance(when, (int, float)) else None
        event = "assessments_retry" if sender.name == _ASSESS else "task_retry"
        m = metrics()
        m.tasks_total.labels(sender.name, _book.get(request.id), "retried").inc()
        if sender.name == _ASSESS:
            m.assessments_retries_total.inc()
        log_event(
            log,
            event,
            logging.WARNING,
            task=sender.name,
            attempt=request.retries + 1,
            backoff_ms=backoff_ms,
            error={"type": getattr(exc, "type", type(exc).__name__)},
        )

    @_observer
    def on_failure(sender=None, task_id=None, exception=None, **_kw):
        if not _failed.first(task_id):
            return
        m = metrics()
        m.tasks_total.labels(sender.name, _book.get(task_id), "failed").inc()
        if sender.name == _ASSESS:
            m.assessments_jobs_total.labels("failure").inc()
        event = "assessments_job_failed" if sender.name == _ASSESS else "task_failure"
        log_event(
            log,
            event,
            logging.ERROR,
            task=sender.name,
            error={"type": getattr(exception, "type", type(exception).__name__)},
        )

    @_observer
    def on_skill(sender=None, outcome=None, provider="unknown", model="unknown", **_kw):
        fields = {"skillId": outcome.skill.id, "skillHash": outcome.skill.skill_hash, "latency_ms": outcome.latency_ms}
        if outcome.error is None:
            log_event(log, "assessment_skill_complete", **fields)
        else:
            log_event(log, "assessment_skill_error", logging.WARNING, error=outcome.error, **fields)
        span = provider_span(outcome, provider, model, sender, settings)
        m = metrics()
        m.assessment_skill_seconds.labels(provider, model, _rubric_version()).observe(outcome.latency_ms / 1000)
        if outcome.error is not None:
            m.assessment_skill_errors_total.labels(provider, model, outcome.error).inc()
        m.observe_provider_call(
            "chat",
            provider,
            model,
            outcome.latency_ms / 1000,
            error=outcome.error,
            tokens_in=span["tokensIn"],
            tokens_out=span["tokensOut"],
            cost_cents=span["costCents"],
        )
        log_event(log, "provider.chat", logging.WARNING if outcome.error else logging.INFO, **span)

    @_observer
    def on_scored(sender=None, summary=None, rubric_version=None, created=None, **_kw):
        meta = summary.get("meta", {})
        log_event(
            log,
            "assessments_scores",
            rubricVersion=rubric_version,
            scores=summary.get("scores"),
            span=meta.get("slice"),
            stored=created,
            skillsCount=meta.get("skillsCount"),
            errors=len(summary.get("errors", [])),
        )

    @_observer
    def on_speech(sender=None, outcome=None, **_kw):
        _log_speech_outcome(outcome)
        model = _speech_model(outcome, settings)
        m = metrics()
        m.observe_provider_call(outcome.kind, outcome.provider, model, outcome.latency_ms / 1000, error=outcome.error)
        m.observe_audio(provider=outcome.provider, bytes_in=outcome.bytes_in, bytes_out=outcome.bytes_out)
        if outcome.bytes_uploaded:
            m.observe_upload("s3" if settings.s3_bucket_audio else "local", outcome.bytes_uploaded)
        span = span_fields(outcome.kind, outcome.provider, model, outcome.latency_ms, error_type=outcome.error)
        log_event(log, f"provider.{outcome.kind}", logging.WARNING if outcome.error else logging.INFO, **span)

    @_observer
    def on_before_publish(sender=None, headers=None, routing_key=None, **_kw):
        if headers is None:
            return
        headers["enqueuedAtMs"] = int(time.time() * 1000)  # every publish, retries and beat included
        if sender == _ASSESS:
            log_event(
                log,
                "assessments_enqueue",
                queue=routing_key,
                sessionIdHash=headers.get("sessionIdHash"),
                groupId=headers.get("groupId"),
                attempt=(headers.get("retries") or 0) + 1,
            )

    @_observer
    def on_received(sender=None, request=None, **_kw):
        _failed.forget(request.id)
        queue = _book.remember(request.id, queue_of(getattr(request, "delivery_info", None) or {}))
        child("tasks_total", request.name, queue, "received").inc()

    @_observer
    def on_worker_init(sender=None, **_kw):
        metrics_host.start(app)

    @_observer
    def on_worker_ready(sender=None, **_kw):
        metrics_host.serve(app)

    @_observer
    def on_worker_shutdown(sender=None, **_kw):
        metrics_host.stop()

    @_observer
    def on_child_shutdown(pid=None, **_kw):
        from coachup.metrics import multiproc

        if multiproc.active_dir() is not None:
            multiproc.mark_dead(pid or os.getpid())

    @_observer
    def on_dead_lettered(sender=None, letter=None, **_kw):
        metrics().record_deadletter(letter.task, letter.reason)
        log_event(
            log,
            "task_dead_lettered",
            logging.ERROR,
            task=letter.task,
            queue=letter.queue,
            reason=letter.reason,
            attempts=letter.attempts,
            redrives=letter.redrives,
            deadLetterId=letter.id,
            error={"type": letter.error_type},
        )

    @_observer
    def on_job_requeued(sender=None, kind=None, queue=None, headers=None, idle_s=None, **_kw):
        if sender is not app:  # sent by another app in this process (tests build several)
            return
        metrics().record_requeue(kind, queue)
        with context.use(RequestContext.from_headers(headers)):
            log_event(
                log, "job_requeued", logging.WARNING, kind=kind, queue=queue, idleS=idle_s, reason="message_missing"
            )

    uid = f"coachup-{id(app)}"
    # one publish receiver per process (it holds no per-app state): several apps must not log one publish twice
    celery_signals.before_task_publish.connect(on_before_publish, weak=False, dispatch_uid="coachup-publish")
    celery_signals.task_received.connect(on_received, weak=False, dispatch_uid=uid + "-received")
    celery_signals.worker_init.connect(on_worker_init, weak=False, dispatch_uid=uid + "-winit")
    celery_signals.worker_ready.connect(on_worker_ready, weak=False, dispatch_uid=uid + "-wready")
    celery_signals.worker_shutdown.connect(on_worker_shutdown, weak=False, dispatch_uid=uid + "-wshutdown")
    celery_signals.worker_process_shutdown.connect(on_child_shutdown, weak=False, dispatch_uid=uid + "-cshutdown")
    celery_signals.setup_logging.connect(on_setup_logging, weak=False, dispatch_uid=uid + "-log")
    celery_signals.task_prerun.connect(on_prerun, weak=False, dispatch_uid=uid + "-prerun")
    celery_signals.task_postrun.connect(on_postrun, weak=False, dispatch_uid=uid + "-postrun")
    celery_signals.task_retry.connect(on_retry, weak=False, dispatch_uid=uid + "-retry")
    celery_signals.task_failure.connect(on_failure, weak=False, dispatch_uid=uid + "-failure")
    skill_assessed.connect(on_skill, weak=False, dispatch_uid=uid + "-skill")
    assessment_scored.connect(on_scored, weak=False, dispatch_uid=uid + "-scored")
    speech_provider_called.connect(on_speech, weak=False, dispatch_uid=uid + "-speech")
    dead_lettered.connect(on_dead_lettered, weak=False, dispatch_uid=uid + "-deadlettered")
    job_requeued.connect(on_job_requeued, weak=False, dispatch_uid=uid + "-requeued")


def _log_speech_outcome(outcome) -> None:
    """`speech_provider_call`: provider, latency and byte counts of one STT/TTS call (never audio or text)."""
    fields = {
        "kind": outcome.kind,
        "provider": outcome.provider,
        "latency_ms": outcome.latency_ms,
        "source": outcome.source,
        "audioBytesIn": outcome.bytes_in,
        "audioBytesOut": outcome.bytes_out,
        "storageBytesUploaded": outcome.bytes_uploaded,
    }
    if outcome.error is None:
        log_event(log, "speech_provider_call", **fields)
    else:
        log_event(log, "speech_provider_error", logging.WARNING, error={"type": outcome.error}, **fields)


def _speech_model(outcome, settings) -> str:
    """The model label of a speech call: the configured OpenAI model, else the provider's own name."""
    if outcome.provider == "openai":
        return settings.openai_stt_model if outcome.kind == "stt" else settings.openai_tts_model
    return {"local": "flite" if outcome.kind == "tts" else "pocketsphinx"}.get(outcome.provider, outcome.provider)


def _queue_depth(queue: str) -> int | None:
    """The last depth the main process sampled (a file read, never a broker round trip)."""
    from coachup.metrics import multiproc
    from coachup.metrics.queue_depth import read_snapshot

    return read_snapshot(multiproc.active_dir(), queue)


def _worker_index() -> int:
    from billiard import current_process

    return getattr(current_process(), "index", 0) or 0


@functools.lru_cache(maxsize=1)
def _rubric_version() -> str:
    from coachup.assessment.types import RUBRIC_VERSION

    return RUBRIC_VERSION
