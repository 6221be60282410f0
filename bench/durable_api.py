"""The same-work baseline of the API benchmark: bare Flask doing the intake's durable work by hand, nothing else.

Issue 19 asks, once the outbox landed, for a baseline "that does the same durable work". `bench.fair_api` commits
one INSERT of the job row and never publishes it; this one does what a job must have before the project answers,
and publishes it too, as the project's relay does:

1. one transaction: the session row (`INSERT ... ON CONFLICT DO NOTHING`), the interaction group (closed), the
   turns (the inline transcript for `POST /assessments/run`, the closing turn for `POST /messages/ingest`; one
   `executemany`), the job row; COMMIT;
2. the job's message: `send_task` on the bare Celery app (`bench.apps:bare`, the project's delivery settings),
   with the job id as its argument and `ignore_result=True`, as the project publishes (without it Celery
   subscribes to each task's result channel on the Redis result backend: work the project never does, which made
   this baseline about 0.6 CPU ms per request dearer than the same work);
3. the job row marked published (one UPDATE, committed).

No validation, no ownership check, no lock beyond what the INSERTs take, no idempotency, no hooks, no metrics, no
log line. Bare drivers on a reused connection, as `bench.fair_api` (whose connection stack it shares). Served by the
same gunicorn setup (`bench.api`).
"""

from __future__ import annotations

import json
import queue
import uuid
from datetime import UTC, datetime

from flask import Flask, request

from bench import fair_api

__all__ = ["app"]

app = Flask("bench-durable")
_P = "%s" if fair_api._PG else "?"
_SESSION = f"INSERT INTO sessions (session_id, tracked_skills, created_at, updated_at) VALUES ({_P}, {_P}, {_P}, {_P})"
_SESSION += " ON CONFLICT (session_id) DO NOTHING"
_GROUP = (
    "INSERT INTO interaction_groups (session_id, group_id, state, turn_count, close_reason, created_at,"
    f" last_turn_at, closed_at) VALUES ({_P}, {_P}, 'idle', {_P}, 'closing_cue', {_P}, {_P}, {_P})"
)
_TURN = (
    "INSERT INTO transcript_turns (session_id, group_id, message_id, seq, role, content, ts, created_at)"
    f" VALUES ({_P}, {_P}, {_P}, {_P}, {_P}, {_P}, NULL, {_P})"
)
_JOB = fair_api.INSERT.format(p=_P)
_MARK = f"UPDATE jobs SET published_at = {_P} WHERE id = {_P} AND published_at IS NULL"


def _stamp(now: datetime):
    return now if fair_api._PG else now.isoformat()


def _intake(session_id: str, turns: list[tuple[str, str, str]], skills: list[str]) -> tuple[str, str]:
    """(group id, job id) of a closed group holding `turns` (message id, role, content), published."""
    from bench.apps import build

    group_id, job_id, request_id = "grp_" + uuid.uuid4().hex, str(uuid.uuid4()), uuid.uuid4().hex
    now = _stamp(datetime.now(UTC))
    try:
        conn = fair_api._idle.get_nowait()
    except queue.Empty:
        conn = fair_api._connect()
    try:
        cur = conn.cursor()
        cur.execute(_SESSION, (session_id, json.dumps(skills), now, now))
        cur.execute(_GROUP, (session_id, group_id, len(turns), now, now, now))
        rows = [(session_id, group_id, mid, seq, role, text, now) for seq, (mid, role, text) in enumerate(turns)]
        cur.executemany(_TURN, rows)
        params, ctx = json.dumps({"trackedSkills": skills}), json.dumps({"x-request-id": request_id})
        cur.execute(_JOB, (job_id, "assessment", "queued", session_id, group_id, request_id, params, ctx, now, now))
        conn.commit()
        build("bare").send_task(
            "assessments.run", args=[job_id], task_id=job_id, queue="assessments", ignore_result=True
        )
        cur.execute(_MARK, (_stamp(datetime.now(UTC)), job_id))
        conn.commit()
    except BaseException:
        conn.rollback()  # never hand an aborted transaction to the next request
        raise
    finally:
        fair_api._idle.put(conn)
    return group_id, job_id


@app.post("/assessments/run")
def run():
    body = request.get_json()
    turns = [(f"t{i}", t["role"], t["content"]) for i, t in enumerate(body.get("transcript") or [])]
    group_id, job_id = _intake(body["sessionId"], turns, list(body.get("trackedSkills") or []))
    return {"groupId": group_id, "taskId": job_id, "status": "accepted"}, 202


@app.post("/messages/ingest")
def ingest():
    body = request.get_json()
    group_id, job_id = _intake(body["sessionId"], [(body["messageId"], body["role"], body["content"])], [])
    return {"state": "idle", "groupId": group_id, "turnCount": 1, "enqueued": True, "deduped": False, "taskId": job_id}
