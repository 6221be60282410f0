"""`AssessmentObserver`: the assessment kind's own events (job, skill and score logs, `coachup_assessment*`).

Bound to the assessment kind by the registry (`coachup.jobs`: `observer=`), and to the assessment's domain
signals (`skill_assessed`, `assessment_scored`); no code asks a task's name.
"""

from __future__ import annotations

import functools
import logging

from coachup.logs import log_event

from ..signals import assessment_scored, skill_assessed
from ..telemetry import provider_span
from .tasks import Run, TaskObserver

__all__ = ["AssessmentObserver"]

log = logging.getLogger("coachup.worker")


@functools.lru_cache(maxsize=1)
def _rubric_version() -> str:
    from coachup.assessment.types import RUBRIC_VERSION

    return RUBRIC_VERSION


def _worker_index() -> int:
    from billiard import current_process

    return getattr(current_process(), "index", 0) or 0


def _queue_depth(queue: str) -> int | None:
    """The last depth the main process sampled (a file read, never a broker round trip)."""
    from coachup.metrics import multiproc
    from coachup.metrics.queue_depth import read_snapshot

    return read_snapshot(multiproc.active_dir(), queue)


class AssessmentObserver(TaskObserver):
    """Assessment jobs: `assessments_*` events and metrics; skills and scores from the domain signals."""

    def started(self, run: Run) -> None:
        s = self.state
        if run.latency_ms is not None and run.first_attempt:
            s.metrics().assessments_enqueue_latency_seconds.observe(run.latency_ms / 1000)
        log_event(
            log,
            "assessments_dequeue",
            workerIndex=_worker_index(),
            queueDepth=_queue_depth(run.queue),
            enqueueLatencyMs=run.latency_ms,
            provider=s.broker.name,
            attempt=run.attempt,
            redelivered=bool(run.delivery.get("redelivered")),
        )
        log_event(log, "assessments_job_start", rubricVersion=_rubric_version())

    def succeeded(self, task, total_ms: int | None) -> None:
        m = self.state.metrics()
        m.assessments_jobs_total.labels("success").inc()
        if total_ms is not None:
            m.assessment_job_seconds.labels(_rubric_version()).observe(total_ms / 1000)
        log_event(log, "assessments_job_complete", rubricVersion=_rubric_version(), total_ms=total_ms)

    def retried(self, task, attempt: int, backoff_ms: int | None, error_type: str) -> None:
        self.state.metrics().assessments_retries_total.inc()
        log_event(
            log,
            "assessments_retry",
            logging.WARNING,
            task=task.name,
            attempt=attempt,
            backoff_ms=backoff_ms,
            error={"type": error_type},
        )

    def failed(self, task, error_type: str) -> None:
        self.state.metrics().assessments_jobs_total.labels("failure").inc()
        log_event(log, "assessments_job_failed", logging.ERROR, task=task.name, error={"type": error_type})

    @classmethod
    def published(cls, task_name: str, headers: dict, routing_key: str | None) -> None:
        log_event(
            log,
            "assessments_enqueue",
            queue=routing_key,
            sessionIdHash=headers.get("sessionIdHash"),
            groupId=headers.get("groupId"),
            attempt=(headers.get("retries") or 0) + 1,
        )

    # ---- the assessment's domain signals ----------------------------------------------------------------
    def subscriptions(self) -> list:
        return [
            (
                skill_assessed,
                lambda sender=None, outcome=None, provider="unknown", model="unknown", **_kw: self.on_skill(
                    sender, outcome, provider, model
                ),
            ),
            (
                assessment_scored,
                lambda sender=None, summary=None, rubric_version=None, created=None, **_kw: self.on_scored(
                    summary or {}, rubric_version or "", bool(created)
                ),
            ),
        ]

    def on_skill(self, task, outcome, provider: str, model: str) -> None:
        fields = {"skillId": outcome.skill.id, "skillHash": outcome.skill.skill_hash, "latency_ms": outcome.latency_ms}
        if outcome.error is None:
            log_event(log, "assessment_skill_complete", **fields)
        else:
            log_event(log, "assessment_skill_error", logging.WARNING, error=outcome.error, **fields)
        span = provider_span(outcome, provider, model, task, self.state.settings)
        m = self.state.metrics()
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

    def on_scored(self, summary: dict, rubric_version: str, created: bool) -> None:
        meta = summary.get("meta", {})
        if created and summary.get("status") == "skipped":  # no user speech: a terminal outcome, not a failure
            self.state.metrics().record_skipped_group()
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
