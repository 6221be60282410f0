"""The fair baseline of the API benchmark: bare Flask that does the durable part of intake and nothing else.

`POST /assessments/run` and `POST /messages/ingest` each parse the JSON body and commit one `INSERT` of a job
row equivalent to the one the project writes (the project's `jobs` table, same columns: id, kind, status,
session, group, request id, params, the outbox's publish context, timestamps; `published_at` NULL), then answer
202 / 200. No validation, no turns, no session lock, no hooks, no metrics, no log line, no publish: since the
outbox (issue 16) the project's routes do not publish either; its relay thread does, off the request path, and
its CPU is counted in the project's API process.

The driver is used bare: psycopg 3 (PostgreSQL, `COACHUP_DATABASE_URL`) or sqlite3 (WAL, the project's file in
`COACHUP_DATA_DIR`), one connection per concurrent request taken from a per-process LIFO stack and reused, never
pinged. The schema must exist (the benchmark creates it with `coachup.store.create_store` before starting
gunicorn). Served by the same gunicorn setup as the project (`bench.api`).
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import uuid
from datetime import UTC, datetime

from flask import Flask, request

__all__ = ["app", "INSERT"]

app = Flask("bench-fair")
INSERT = (
    "INSERT INTO jobs (id, kind, status, session_id, group_id, request_id, attempts, params, publish_attempts,"
    " publish_context, created_at, updated_at) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, 0, {p}, 0, {p}, {p}, {p})"
)
_URL = os.environ.get("COACHUP_DATABASE_URL", "")
_PG = _URL.startswith(("postgres://", "postgresql://", "postgresql+psycopg://"))
_SQL = INSERT.format(p="%s" if _PG else "?")
_idle: queue.LifoQueue = queue.LifoQueue()


def _connect():
    if _PG:
        import psycopg

        return psycopg.connect(_URL.replace("postgresql+psycopg://", "postgresql://", 1))
    path = os.path.join(os.environ.get("COACHUP_DATA_DIR", "var"), "coachup.sqlite")
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _insert_job(session_id: str, group_id: str, params: dict | None) -> str:
    job_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    ctx = {"x-request-id": uuid.uuid4().hex}
    row = (job_id, "assessment", "queued", session_id, group_id, ctx["x-request-id"], json.dumps(params))
    row += (json.dumps(ctx), now if _PG else now.isoformat(), now if _PG else now.isoformat())
    try:
        conn = _idle.get_nowait()
    except queue.Empty:
        conn = _connect()
    conn.execute(_SQL, row)
    conn.commit()
    _idle.put(conn)
    return job_id


@app.post("/assessments/run")
def run():
    body = request.get_json()
    session_id = body["sessionId"]
    group_id = "grp_" + uuid.uuid4().hex
    job_id = _insert_job(session_id, group_id, {"trackedSkills": body.get("trackedSkills") or []})
    return {"groupId": group_id, "taskId": job_id, "status": "accepted"}, 202


@app.post("/messages/ingest")
def ingest():
    body = request.get_json()
    group_id = "grp_" + uuid.uuid4().hex
    job_id = _insert_job(body["sessionId"], group_id, {"trackedSkills": []})
    return {"state": "idle", "groupId": group_id, "turnCount": 1, "enqueued": True, "deduped": False, "taskId": job_id}
