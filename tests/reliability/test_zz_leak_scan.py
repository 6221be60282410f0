"""Leaks of one redaction scenario: raw user/session ids, text and a bearer token sent through the API, a
worker, a provider that quotes them back, the dead-letter path and Flower appear in no log file of the
scenario, no metric, no task message on the broker, no failure record, no dead-letter record, no `coachup dlq`
output, no ops API answer and no Flower page. Flower without credentials answers 401 on its UI and API.

The scan of the whole run is not here (a test runs where pytest orders it): `pytest_sessionfinish` in
tests/conftest.py scans every log, store, broker tap and SQS queue of the run once every test has finished,
for `RUN_NEEDLES` (tests/support/leaks.py). This scenario hands it what would otherwise be gone by then.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.fake_openai import ScriptedOpenAI
from tests.support.jwks import JwksServer
from tests.support.leaks import RUN_NEEDLES, BrokerTap, LeakScanner, keep
from tests.support.services import free_port, port_open
from tests.support.wait import wait_until
from workers.brokers import broker_for

from .harness import DrillStack
from .record import record

RAW_USER = "user-RAWLEAK-8c1f"
RAW_SESSION = "sess-RAWLEAK-41aa"
RAW_SESSION_DEAD = "sess-RAWLEAK-d3ad"  # its job is refused by the provider (which quotes the text) and dead-lettered
RAW_TEXT = "periwinklequasar"  # the scenario's transcript word
ADMIN_TOKEN = "admin-" + uuid.uuid4().hex
ROOT = Path(__file__).resolve().parents[2]
FLOWER_AUTH = ("ops", "flower-pass-" + uuid.uuid4().hex[:6])


@pytest.fixture
def llm():
    """An OpenAI-compatible server: answers, except that it refuses (400, quoting the input) `REJECTME`."""
    fake = ScriptedOpenAI(hold_calls=0).start()
    yield fake
    fake.stop()


@pytest.fixture
def flower(tmp_path, llm):
    """The scenario's stack (OpenAI provider on the local fake, ops API on) plus Flower (basic auth)."""
    stack = DrillStack(
        tmp_path / "stack",
        database_url=f"sqlite:///{tmp_path / 'leak.sqlite'}",
        AI_PROVIDER="openai",
        OPENAI_API_KEY="sk-test-not-a-real-key-leak",
        OPENAI_BASE_URL=llm.base_url,
        COACHUP_DEFAULT_SKILLS="clarity_eloquence",
        COACHUP_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    port = free_port()
    log = open(tmp_path / "flower.log", "ab")
    env = {**__import__("os").environ, **stack.env, "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers", "flower", "--address=127.0.0.1", f"--port={port}"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )
    try:
        wait_until(lambda: port_open("127.0.0.1", port), timeout=60, what="Flower to listen")
        yield stack, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
        stack.close()


def test_nothing_raw_leaks_from_the_redaction_scenario(flower, llm, tmp_path):
    stack, flower_url = flower
    worker = stack.worker("leak", concurrency=1, queues="assessments,deadletter")
    # task events are off until someone watches; Flower turns them on at run time (every 5 s)
    wait_until(worker.task_events_on, timeout=30, what="Flower to turn the worker's task events on")
    idp = JwksServer()
    try:
        from coachup.settings import load_settings
        from web import create_app

        app = create_app(load_settings({**stack.env, **idp.env()}), celery_app=stack.celery, configure_logs=False)
        client = app.test_client()
        token = idp.token(sub=RAW_USER)
        headers = {"Authorization": f"Bearer {token}", "x-user-id": RAW_USER, "x-session-id": RAW_SESSION}
        with BrokerTap("127.0.0.1", stack.redis.port, 0) as tap:
            resp = client.post(
                "/messages/ingest",
                headers=headers,
                json={
                    "sessionId": RAW_SESSION,
                    "messageId": "m1",
                    "role": "user",
                    "end": True,
                    "content": f"I explained the {RAW_TEXT} project to the board and answered their questions about the budget.",
                },
            )
            assert resp.status_code == 200 and resp.get_json()["enqueued"], resp.get_json()
            task_id = resp.get_json()["taskId"]
            wait_until(lambda: stack.store.get_job(task_id)["status"] == "done", timeout=60, what="the job")
            client.get("/api/v1/transcripts?sessionId=" + RAW_SESSION, headers={"Authorization": "Bearer x"})
            # a job the provider refuses, quoting the raw text back: it fails permanently and is dead-lettered
            resp = client.post(
                "/messages/ingest",
                headers={**headers, "x-session-id": RAW_SESSION_DEAD},
                json={
                    "sessionId": RAW_SESSION_DEAD,
                    "messageId": "m1",
                    "role": "user",
                    "end": True,
                    "content": f"REJECTME: the {RAW_TEXT} plan of {RAW_USER} in {RAW_SESSION_DEAD} for the next quarter.",
                },
            )
            assert resp.status_code == 200 and resp.get_json()["enqueued"], resp.get_json()
            source = broker_for(stack.settings).dead_letters(stack.store)
            wait_until(lambda: source.depth() == 1, timeout=60, what="the refused job's dead letter")
        # what an operator reads about dead letters: the records, the CLI, the ops API
        letters = source.list(limit=10)
        letter_texts = [json.dumps(x.to_dict()) for x in letters]
        with stack.store.session() as s:  # the stored rows themselves, every column
            from sqlalchemy import text as sql

            letter_texts += [json.dumps([str(v) for v in row]) for row in s.execute(sql("SELECT * FROM dead_letters"))]
        cli_env = {**os.environ, **stack.env}
        cli = [
            subprocess.run(
                [sys.executable, "-m", "coachup.cli", "dlq", *argv],
                env=cli_env,
                capture_output=True,
                text=True,
                timeout=60,
                cwd=ROOT,
            )
            for argv in (["ls"], ["ls", "--json"], ["show", letters[0].id], ["redrive", "--dry-run"])
        ]
        assert all(r.returncode == 0 for r in cli), [r.stderr[-500:] for r in cli]
        assert letters[0].id in cli[1].stdout and "assessments.run" in cli[0].stdout
        admin = {"x-admin-token": ADMIN_TOKEN, **headers}
        ops = [client.get(path, headers=admin) for path in ("/api/v1/ops/deadletters", "/api/v1/ops/queues")]
        ops.append(client.post("/api/v1/ops/deadletters/redrive", headers=admin, json={"dryRun": True}))
        assert [r.status_code for r in ops] == [200, 200, 200], [r.get_json() for r in ops]
        assert ops[0].get_json()["items"][0]["id"] == letters[0].id
        # Flower: 401 without credentials on the UI and the API; with them, the task is there
        flower_anonymous = {}
        for path in ("/", "/tasks", "/api/tasks", "/api/workers"):
            flower_anonymous[path] = requests.get(flower_url + path, timeout=10).status_code
            assert flower_anonymous[path] == 401, path
        wait_until(
            lambda: task_id in requests.get(flower_url + "/api/tasks", auth=FLOWER_AUTH, timeout=10).text,
            timeout=30,
            interval=0.5,
            what="Flower to see the task",
        )
        flower_pages = [
            requests.get(flower_url + p, auth=FLOWER_AUTH, timeout=10).text
            for p in ("/api/tasks", f"/api/task/info/{task_id}", "/tasks", f"/task/{task_id}")
        ]
        metrics = [client.get("/metrics").get_data(as_text=True), client.get("/api/metrics").get_data(as_text=True)]
    finally:
        idp.close()
    worker.stop()

    assert any(RAW_TEXT in json.dumps(r) for r in llm.requests)  # the provider did see (and quote) the raw text
    scanner = LeakScanner(
        [RAW_USER, RAW_SESSION, RAW_SESSION_DEAD, RAW_TEXT, token, token.split(".")[2], ADMIN_TOKEN, *RUN_NEEDLES]
    )
    logs = sorted(tmp_path.rglob("*.log"))  # the scenario's stack, worker and Flower
    hits = []
    for path in logs:
        hits += scanner.scan(f"log:{path.name}", path.read_text(errors="replace").splitlines())
    hits += scanner.scan("metrics", metrics)
    hits += scanner.scan("broker", tap.texts())
    hits += scanner.scan("flower", flower_pages)
    with stack.store.session() as s:  # failure records: what a dead-letter record will be built from
        from sqlalchemy import select

        from coachup.store.models import Job

        errors = [f"{t} {m}" for t, m in s.execute(select(Job.error_type, Job.error_message))]
    hits += scanner.scan("job errors", errors)
    hits += scanner.scan("dead-letter records", letter_texts)
    hits += scanner.scan("dlq cli", [r.stdout + r.stderr for r in cli])
    hits += scanner.scan("ops api", [r.get_data(as_text=True) for r in ops])
    keep("leak scenario answers", [*metrics, *flower_pages, *letter_texts, *(r.stdout + r.stderr for r in cli)])
    assert len(tap.texts()) > 0 and len(logs) >= 2
    control = LeakScanner(scanner.needles)  # the scan has teeth: a raw value planted in a line is found
    assert len(control.scan("control", [f"sessionId={RAW_SESSION}", f"bearer {token}"])) >= 2
    assert not hits, hits[:5]
    record(
        "attack",
        "leak scan of the redaction scenario",
        logFiles=len(logs),
        linesScanned=sum(scanner.scanned.values()),
        brokerMessages=len(tap.messages),
        flowerPages=len(flower_pages),
        needles=len(scanner.needles),
        hits=len(hits),
        flowerAnonymous401=sum(1 for status in flower_anonymous.values() if status == 401),
        deadLetters=len(letters),
        dlqCommands=len(cli),
        opsAnswers=len(ops),
    )
