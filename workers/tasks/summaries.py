"""The session-summary job (queue `summaries`): bring a session's rolling summary up to date with its stored
turns, as the next version. Arguments are a job id only; the session and the window live in the job row.
"""

from __future__ import annotations

import logging

from coachup.errors import NotFound
from coachup.logs import log_event
from coachup.store.owners import job_may_touch_session
from coachup.store.summaries import SummaryStore
from coachup.summaries import summarise
from coachup.summaries.refresh import refresh_summary

from ..base import request_headers, task_options
from ..summary_enqueue import SUMMARY_KIND

__all__ = ["register"]

log = logging.getLogger("coachup.worker")


def register(app) -> None:
    settings = app.coachup.settings
    # a summary call is bounded (20 s); the limits match the assessment task's so one worker family fits both
    soft_limit = settings.group_timeout_ms / 1000 + 10

    @app.task(
        **task_options(app, SUMMARY_KIND, soft_time_limit=soft_limit, time_limit=soft_limit + 10, ignore_result=True)
    )
    def refresh_session_summary(self, job_id: str) -> dict:
        """Write the next summary version of the job's session once; a rerun finds it covered."""
        store = self.runtime.store
        job = store.job_record(job_id)
        if job is None or job.kind != SUMMARY_KIND:
            raise NotFound("no summary job with this id")
        if not job_may_touch_session(store, job):  # acts for its owner only (a tampered or mis-redriven job)
            raise NotFound("no session of this job's owner")
        if job.status == "done":
            return {"status": "done"}
        self.begin_run(job_id)  # one delivery at a time calls the provider (workers/run_lease.py)
        headers = request_headers(self.request)
        upstream = {"x-request-id": headers.get("requestId") or job.request_id or job_id}

        def summarise_turns(prev, turns):
            return summarise(settings, prev, turns, budget=settings.summary_token_budget, headers=upstream)

        through = int((job.params or {}).get("throughTurn") or 0)
        outcome = refresh_summary(SummaryStore(store), job.session_id, through, summarise_turns)
        if outcome.result is not None:
            _observe(app, outcome.result)
        version = outcome.record.version if outcome.record else 0
        log_event(
            log,
            "summary_refresh",
            status=outcome.status,
            version=version,
            window=(job.params or {}).get("window"),
            turnsCovered=outcome.record.turns_covered if outcome.record else 0,
        )
        store.mark_job(job_id, "done", result={"status": outcome.status, "version": version})
        return {"status": outcome.status, "version": version}


def _observe(app, result) -> None:
    try:
        from ..metrics_host import metrics_for

        metrics_for(app).observe_provider_call(
            "summary",
            result.provider,
            result.model,
            result.seconds,
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
        )
    except Exception:  # observers never break work
        log.warning("summary metrics failed", extra={"event": "observer_error"})
