"""The same-work baseline (`bench/durable_api.py`) does the intake's durable work, so the ratio against it means
what the table says: for each route, on SQLite and PostgreSQL, a request leaves the session, a closed group with
every turn, a job row marked published, and the job's message on the `assessments` queue of a real Redis, sent
without asking for its result, as the project sends it.

The app reads its store from the environment when it is imported, so it runs in a child interpreter (Flask's test
client, no server); the rows and the message are read here, from the store and the broker themselves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from coachup.store import create_store
from tests.support.services import PrivateRedis

ROOT = Path(__file__).resolve().parents[2]
_CHILD = """
import json, sys
from bench.api import _body
from bench.durable_api import app
client = app.test_client()
out = []
for route, path in (("run", "/assessments/run"), ("ingest", "/messages/ingest")):
    body = json.loads(json.dumps(_body(route)).replace('"SESSION"', json.dumps("same-" + route)))
    r = client.post(path, json=body)
    out.append([route, r.status_code, r.get_json()])
print(json.dumps(out))
"""


@pytest.fixture
def redis():
    server = PrivateRedis()
    yield server
    server.close()


def test_each_route_commits_the_turns_group_and_job_then_publishes_and_marks_it(store_url, tmp_path, redis):
    from bench.assessment import TURNS

    env = {k: v for k, v in os.environ.items() if not k.startswith("COACHUP_")}
    env.update(COACHUP_DATA_DIR=str(tmp_path), COACHUP_BROKER_URL=redis.url, PYTHONPATH=str(ROOT))
    if store_url.startswith("postgresql"):
        env["COACHUP_DATABASE_URL"] = store_url
    else:
        store_url = f"sqlite:///{tmp_path / 'coachup.sqlite'}"  # the file the app opens in its data dir
    store = create_store(store_url)  # the schema, as the benchmark creates it before starting the server
    done = subprocess.run([sys.executable, "-c", _CHILD], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    answers = {route: (status, body) for route, status, body in json.loads(done.stdout.strip().splitlines()[-1])}
    assert {route: status for route, (status, _) in answers.items()} == {"run": 202, "ingest": 200}

    queued = [json.loads(m) for m in redis.client().lrange("assessments", 0, -1)]
    with store.engine.connect() as conn:
        for route, turns in (("run", len(TURNS)), ("ingest", 1)):
            session, body = f"same-{route}", answers[route][1]
            group, job = body["groupId"], body["taskId"]
            assert (
                conn.execute(text("SELECT count(*) FROM sessions WHERE session_id = :s"), {"s": session}).scalar() == 1
            )
            state, count = conn.execute(
                text("SELECT state, turn_count FROM interaction_groups WHERE session_id = :s AND group_id = :g"),
                {"s": session, "g": group},
            ).one()
            assert (state, count) == ("idle", turns)
            stored = conn.execute(
                text("SELECT count(*) FROM transcript_turns WHERE session_id = :s AND group_id = :g"),
                {"s": session, "g": group},
            ).scalar()
            assert stored == turns
            status, published = conn.execute(
                text("SELECT status, published_at FROM jobs WHERE id = :j"), {"j": job}
            ).one()
            assert status == "queued" and published is not None
            (message,) = [m for m in queued if m["headers"]["id"] == job]
            # published as the project publishes: no subscription to the task's result (a baseline that asked for
            # results paid for work the project never does)
            assert message["headers"]["ignore_result"] is True
    assert len(queued) == 2
    store.engine.dispose()
