"""Observers of the worker host and of the non-task signals: speech calls, dead letters, requeued jobs."""

from __future__ import annotations

import logging
import os
import sys

from coachup import context
from coachup.context import RequestContext
from coachup.logs import configure_logging, flush_all, flush_on_sigterm, log_event

from .. import metrics_host
from ..telemetry import span_fields
from .tasks import TaskState

__all__ = ["HostObserver", "SpeechObserver", "DeadLetterObserver", "RequeueObserver"]

log = logging.getLogger("coachup.worker")


class HostObserver:
    """The worker main process: logging set-up, the metrics directory, endpoint and depth sampler."""

    def __init__(self, state: TaskState) -> None:
        self.state = state

    def on_setup_logging(self) -> None:
        s = self.state.settings
        # Celery sends this signal in `celery beat` too: its lines say `beat`, not `worker`
        service = "beat" if "beat" in sys.argv[1:] else "worker"
        configure_logging(service, s.env, s.log_level, log_format=s.log_format)

    def on_worker_init(self) -> None:
        metrics_host.start(self.state.app)
        # the main process's store (the depth sampler reads dead letters through it) is built now, before the
        # pool forks, not by the sampler thread while a replacement child is being forked
        _ = self.state.app.coachup.store

    def on_worker_ready(self) -> None:
        metrics_host.serve(self.state.app)

    def on_worker_shutdown(self) -> None:
        metrics_host.stop()
        flush_all()

    def on_child_init(self) -> None:
        # Celery leaves SIGTERM at its default in a pool child (it dies at once): write its buffered lines first
        flush_on_sigterm()

    def on_child_shutdown(self, pid: int | None) -> None:
        from coachup.metrics import multiproc

        flush_all()  # a pool child ends with os._exit: no atexit, so its buffered log lines are written here
        if multiproc.active_dir() is not None:
            multiproc.mark_dead(pid or os.getpid())


class SpeechObserver:
    """`speech_provider_called`: provider latency/errors, audio bytes, uploads, and the `provider.*` span."""

    def __init__(self, state: TaskState) -> None:
        self.state = state

    def on_speech(self, outcome) -> None:
        _log_speech_outcome(outcome)
        model = _speech_model(outcome, self.state.settings)
        m = self.state.metrics()
        m.observe_provider_call(outcome.kind, outcome.provider, model, outcome.latency_ms / 1000, error=outcome.error)
        m.observe_audio(provider=outcome.provider, bytes_in=outcome.bytes_in, bytes_out=outcome.bytes_out)
        if outcome.bytes_uploaded:
            m.observe_upload("s3" if self.state.settings.s3_bucket_audio else "local", outcome.bytes_uploaded)
        span = span_fields(outcome.kind, outcome.provider, model, outcome.latency_ms, error_type=outcome.error)
        log_event(log, f"provider.{outcome.kind}", logging.WARNING if outcome.error else logging.INFO, **span)


class DeadLetterObserver:
    """`dead_lettered`: `coachup_deadletters_total` and the `task_dead_lettered` event."""

    def __init__(self, state: TaskState) -> None:
        self.state = state

    def on_dead_lettered(self, letter) -> None:
        self.state.metrics().record_deadletter(letter.task, letter.reason)
        log_event(
            log,
            "task_dead_lettered",
            logging.ERROR,
            taskId=letter.task_id,
            task=letter.task,
            queue=letter.queue,
            reason=letter.reason,
            attempts=letter.attempts,
            redrives=letter.redrives,
            deadLetterId=letter.id,
            error={"type": letter.error_type},
        )


class RequeueObserver:
    """`job_requeued` (sent by this app's sweep): the requeue counter and the `job_requeued` event."""

    def __init__(self, state: TaskState) -> None:
        self.state = state

    def on_job_requeued(
        self, sender, kind: str, queue: str, headers: dict, idle_s: float, reason: str = "message_missing"
    ) -> None:
        if sender is not self.state.app:  # sent by another app in this process (tests build several)
            return
        self.state.metrics().record_requeue(kind, queue)
        with context.use(RequestContext.from_headers(headers)):
            log_event(log, "job_requeued", logging.WARNING, kind=kind, queue=queue, idleS=idle_s, reason=reason)


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
