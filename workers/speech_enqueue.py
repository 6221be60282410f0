"""Publishing STT and TTS jobs: a job row (kind `stt`/`tts`, the work's params) first, then a message
carrying only the job id. A publish the broker refuses removes the row again (`BrokerUnavailable`).
"""

from __future__ import annotations

from coachup.context import RequestContext
from coachup.redaction import Hasher
from coachup.store import Store

from .enqueue import BrokerUnavailable, publish
from .tasks.speech import STT_TASK, TTS_TASK

__all__ = ["enqueue_speech", "speech_headers", "SPEECH_TASKS", "BrokerUnavailable"]

SPEECH_TASKS = {"stt": STT_TASK, "tts": TTS_TASK}  # kind -> task (its queue has the kind's name)


def speech_headers(
    ctx: RequestContext, hasher: Hasher, params: dict, session_id: str | None, group_id: str | None
) -> dict:
    """The message headers of a speech job: the request context, the provider, hashed session and group."""
    changes = {"provider": params.get("provider")}
    if session_id:
        changes["sessionIdHash"] = hasher.session(session_id)
    if group_id:
        changes["groupId"] = hasher.group(group_id)
    return ctx.with_(**changes).to_headers()


def enqueue_speech(
    app,
    store: Store,
    hasher: Hasher,
    kind: str,
    *,
    params: dict,
    ctx: RequestContext,
    session_id: str | None = None,
    group_id: str | None = None,
) -> str:
    """Queue one `kind` job (`stt` | `tts`); returns its id (also the Celery task id)."""
    job_id = store.create_job(kind, session_id=session_id, group_id=group_id, request_id=ctx.requestId, params=params)
    headers = speech_headers(ctx, hasher, params, session_id, group_id)
    try:
        publish(app, SPEECH_TASKS[kind], task_id=job_id, args=[job_id], headers=headers)
    except BrokerUnavailable:
        store.delete_job(job_id)
        raise
    return job_id
