"""`callbacks.finalize` (queue `callbacks`): deliver a stored summary to the front end's finalize route.

Its own job kind (`finalize`, one per group: a unique index), so a slow or refusing front end never blocks
or fails the assessment: the assessment task stores the summary, queues this job and is done. Timeouts,
refused connections, 429 and 5xx retry with backoff (`PERSIST_ASSESSMENTS_MAX_RETRIES`); a 4xx refusal,
or retries running out, dead-letters the job, and a redrive (`coachup dlq redrive --task callbacks.finalize`)
sends it again once the front end is fixed. Arguments are the job id only.
"""

from __future__ import annotations

import logging

from coachup.errors import NotFound, ProviderUnconfigured
from coachup.jobs import job_kind
from coachup.logs import log_event
from coachup.persist import finalize_payload, post_summary
from coachup.store.owners import job_may_touch_session

from ..base import request_headers, task_options

__all__ = ["register", "FINALIZE_TASK", "FINALIZE_KIND"]

FINALIZE_KIND = "finalize"
FINALIZE_TASK = job_kind(FINALIZE_KIND).task

log = logging.getLogger("coachup.worker")


def register(app) -> None:
    settings = app.coachup.settings
    limit = settings.persist_timeout_s * 2 + 10  # one POST (connect + read timeouts) and the store writes

    @app.task(
        **task_options(
            app,
            FINALIZE_KIND,
            soft_time_limit=limit,
            time_limit=limit + 10,
            ignore_result=True,
        )
    )
    def finalize(self, job_id: str) -> dict:
        """POST the v2 payload of job `job_id`'s group once; a job already done is not sent again."""
        store = self.runtime.store
        job = store.job_record(job_id)
        if job is None or job.kind != FINALIZE_KIND:
            raise NotFound("no finalize job with this id")
        if not job_may_touch_session(store, job):  # acts for its owner only (a tampered or mis-redriven job)
            raise NotFound("no session of this job's owner")
        if job.status == "done":
            return {"status": "done"}
        if not settings.persist_url:  # configuration removed after the job was queued: keep it for a redrive
            raise ProviderUnconfigured("PERSIST_ASSESSMENTS_URL is not set")
        summary = store.get_assessment(job.session_id, job.group_id)
        if summary is None:
            raise NotFound("the group has no stored summary")
        self.begin_run(job_id)  # one delivery at a time POSTs (workers/run_lease.py)
        payload, skipped = finalize_payload(job.session_id, job.group_id, summary, settings.skill_hash_salt)
        if payload is None:
            # the route refuses an empty list: nothing to tell the front end (no skill had enough speech)
            log_event(log, "finalize_skipped", reason="no_assessed_skills", skippedItems=skipped)
            store.mark_job(job_id, "done", result={"delivered": False, "reason": "no_assessed_skills"})
            return {"status": "done", "delivered": False}
        headers = request_headers(self.request)
        status = post_summary(
            settings.persist_url,
            settings.persist_secret,
            payload,
            request_id=headers.get("requestId") or job.request_id or job_id,
            traceparent=headers.get("traceparent"),
            timeout_s=settings.persist_timeout_s,
        )
        items = len(payload["summary"]["skillAssessments"])
        log_event(log, "finalize_delivered", httpStatus=status, items=items, skippedItems=skipped)
        store.mark_job(job_id, "done", result={"delivered": True, "httpStatus": status, "items": items})
        return {"status": "done", "delivered": True}
