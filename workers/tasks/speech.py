"""The STT and TTS tasks (queues `stt` and `tts`): load the job row, run the speech service, store the result.

Arguments are job ids only; the audio (object key or URL) and the text to speak live in the job's params.
"""

from __future__ import annotations

from coachup.errors import NotFound
from coachup.speech.service import run_stt, run_tts
from coachup.store.owners import record_object

from ..base import request_headers, task_options
from ..signals import speech_provider_called

__all__ = ["register"]


def _upstream_headers(task, job) -> dict:
    headers = request_headers(task.request)
    out = {"x-request-id": headers.get("requestId") or job.request_id or job.id}
    if headers.get("traceparent"):
        out["traceparent"] = headers["traceparent"]
    return out


def _load(task, job_id: str, kind: str):
    job = task.runtime.store.job_record(job_id)
    if job is None or job.kind != kind:
        raise NotFound(f"no {kind} job with this id")
    return job


def register(app) -> None:
    settings = app.coachup.settings
    limit = settings.speech_timeout_ms / 1000 * 2 + 30  # a fetch and a provider call, each bounded

    def report(task):
        return lambda outcome: speech_provider_called.send(sender=task, outcome=outcome)

    @app.task(**task_options(app, "stt", soft_time_limit=limit, time_limit=limit + 10, ignore_result=True))
    def transcribe(self, job_id: str) -> dict:
        """Transcribe the audio of STT job `job_id`; a done job is not run again."""
        job = _load(self, job_id, "stt")
        if job.status == "done" and job.result:
            return {"status": "done"}
        self.begin_run(job_id)  # one delivery at a time calls the provider (workers/run_lease.py)
        result = run_stt(job.params or {}, settings, headers=_upstream_headers(self, job), report=report(self))
        self.runtime.store.mark_job(job_id, "done", result=result)
        return {"status": "done"}

    @app.task(**task_options(app, "tts", soft_time_limit=limit, time_limit=limit + 10, ignore_result=True))
    def synthesize(self, job_id: str) -> dict:
        """Speak the text of TTS job `job_id`; a done job is not run again."""
        job = _load(self, job_id, "tts")
        if job.status == "done" and job.result:
            return {"status": "done"}
        self.begin_run(job_id)  # one delivery at a time calls the provider (workers/run_lease.py)
        result = run_tts(job_id, job.params or {}, settings, headers=_upstream_headers(self, job), report=report(self))
        if result.get("objectKey"):  # the audio is the job owner's: only they may presign a GET for it
            record_object(self.runtime.store, result["objectKey"], job.owner)
        self.runtime.store.mark_job(job_id, "done", result=result)
        return {"status": "done"}
