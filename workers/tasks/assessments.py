"""The assessment task: load an idle group's turns, assess each tracked skill, store one summary.

A group with no user speech is not an error: its summary has `status: "skipped"`, is stored like any
other, the job ends `done`, and `coachup_assessments_skipped_total` counts it (never a dead letter).
With `PERSIST_ASSESSMENTS_URL` set, the stored summary is handed to the front end by a job of its own
(`callbacks.finalize`, `workers/tasks/callbacks.py`): queueing it never fails or delays this task.
"""

from __future__ import annotations

import logging

from coachup.assessment.providers import build_assessor
from coachup.assessment.service import assess_group
from coachup.assessment.types import Turn
from coachup.context import RequestContext
from coachup.errors import NotFound, ValidationFailed
from coachup.logs import log_event
from coachup.store.catalogue import resolve_skills
from coachup.store.owners import job_may_touch_session

from ..base import request_headers, task_options
from ..signals import assessment_scored, skill_assessed

log = logging.getLogger("coachup.worker")

__all__ = ["register"]


def register(app) -> None:
    settings = app.coachup.settings
    soft_limit = settings.group_timeout_ms / 1000 + 10

    @app.task(**task_options(app, "assessment", soft_time_limit=soft_limit, time_limit=soft_limit + 10))
    def run_assessment(self, job_id: str) -> dict:
        """Assess the group behind job `job_id` once; a rerun finds the stored summary and writes nothing."""
        store = self.runtime.store
        job = store.job_record(job_id)
        if job is None or job.kind != "assessment":
            raise NotFound("no assessment job with this id")
        if not job_may_touch_session(store, job):  # acts for its owner only (a tampered or mis-redriven job)
            raise NotFound("no session of this job's owner")
        summary = store.get_assessment(job.session_id, job.group_id)
        if summary is None:
            self.begin_run(job_id)  # one delivery at a time calls the provider (workers/run_lease.py)
            summary = _assess(self, job)
            created = store.save_assessment(
                session_id=job.session_id,
                group_id=job.group_id,
                job_id=job_id,
                rubric_version=summary["rubricVersion"],
                summary=summary,
            )
            assessment_scored.send(
                sender=self, summary=summary, rubric_version=summary["rubricVersion"], created=created
            )
        if settings.persist_url:
            _queue_finalize(self, job)
        outcome = summary.get("status", "assessed")
        store.mark_job(job_id, "done", result={"groupId": job.group_id, "status": outcome, "scores": summary["scores"]})
        status = "skipped" if outcome == "skipped" else "done"
        return {"status": status, "rubricVersion": summary["rubricVersion"], "scores": summary["scores"]}


def _assess(task, job) -> dict:
    settings = task.runtime.settings
    records = task.runtime.store.load_turns(job.session_id, job.group_id)
    if not records:
        raise ValidationFailed("the group has no turns")
    turns = [Turn(index=r.seq, role=r.role, content=r.content, ts=r.ts) for r in records]
    requested = (job.params or {}).get("trackedSkills") or list(settings.default_skills)
    skills, _unknown = resolve_skills(task.runtime.store, requested)  # the store's catalogue
    if not skills:
        raise ValidationFailed("none of the tracked skills is known")
    headers = request_headers(task.request)
    upstream = {"x-request-id": headers.get("requestId") or job.request_id or job.id}
    for header, key in (("traceparent", "traceparent"), ("x-provider", "provider"), ("x-model-id", "modelId")):
        if headers.get(key):
            upstream[header] = headers[key]
    assessor = build_assessor(settings, headers=upstream)

    def on_skill(outcome) -> None:
        skill_assessed.send(sender=task, outcome=outcome, provider=assessor.provider, model=assessor.model)

    return assess_group(
        turns,
        skills,
        assessor,
        skill_timeout_s=settings.skill_timeout_ms / 1000,
        group_timeout_s=settings.group_timeout_ms / 1000,
        on_skill=on_skill,
    )


def _queue_finalize(task, job) -> None:
    """Queue the group's finalize callback; a failure here is logged, never the assessment's failure."""
    from ..callbacks_enqueue import enqueue_finalize

    ctx = RequestContext.from_headers(request_headers(task.request))
    try:
        enqueue_finalize(
            task.app, task.runtime.store, task.runtime.hasher, session_id=job.session_id, group_id=job.group_id, ctx=ctx
        )
    except Exception as exc:  # the job row (if written) stays in the outbox: the relay's next pass publishes it
        log_event(log, "finalize_enqueue_error", logging.WARNING, error={"type": type(exc).__name__})
