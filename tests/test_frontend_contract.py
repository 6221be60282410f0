"""The Coach Up web front end against the real system: every call of FRONTEND-CONTRACT.md rows B-F, H and I,
sent exactly as the front end's proxies send them (tests/support/frontend.py), and what its UI reads.

Each stack is the real thing: the API under gunicorn (`coachup api`, 2 workers), a Celery worker process,
the broker and the store (embedded broker + SQLite, Redis + PostgreSQL), and a local finalize route that
checks what the front end's route checks (tests/support/finalize_route.py).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from coachup.assessment.skills import SKILLS
from coachup.settings import load_settings
from tests.conftest import stack_env
from tests.support.api_server import ApiServer
from tests.support.finalize_route import FinalizeRoute
from tests.support.frontend import FrontEnd, base36_id
from tests.support.services import EmbeddedBrokerServer, PostgresDatabase, PrivateRedis
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess

SALT, SECRET, ADMIN = "fe-salt-5d2", "fe-persist-secret", "fe-admin-token"
STACKS = {"embedded-sqlite": ("embedded", "sqlite"), "redis-postgres": ("redis", "postgres")}
CATEGORIES = ["correctness", "clarity", "conciseness", "fluency"]
# one voice-loop conversation: what STT heard, what the coach replied
CONVERSATION = [
    ("user", "Can you help me plan my pitch for the board meeting on Friday?"),
    ("assistant", "Of course. Start with the one number that matters, then the ask. What is the number?"),
    ("user", "Revenue grew eight percent this quarter and I want two more engineers for the platform team."),
    ("assistant", "That is a clear ask. Open with the eight percent, then the two engineers. Good luck!"),
]


@dataclass
class Stack:
    name: str
    api: ApiServer
    worker: WorkerProcess
    route: FinalizeRoute
    settings: object
    data_dir: Path
    calls: Counter = field(default_factory=Counter)  # contract row -> calls replayed on this stack

    def frontend(self) -> FrontEnd:
        return FrontEnd(self.api.url, calls=self.calls)


@pytest.fixture(scope="module", params=list(STACKS), ids=list(STACKS))
def stack(request, tmp_path_factory):
    broker, store = STACKS[request.param]
    data_dir = tmp_path_factory.mktemp("fe-" + request.param)
    route = FinalizeRoute(secret=SECRET, salt=SALT, skill_ids=[s.id for s in SKILLS])
    redis = PrivateRedis() if broker == "redis" else None  # its own server: no other worker may eat its messages
    pg = PostgresDatabase() if store == "postgres" else None
    env = stack_env(
        data_dir,
        broker,
        store,
        None,
        pg,
        PERSIST_ASSESSMENTS_URL=route.url,
        PERSIST_ASSESSMENTS_SECRET=SECRET,
        SKILL_HASH_SALT=SALT,
        PERSIST_ASSESSMENTS_TIMEOUT_S="1",
        PERSIST_ASSESSMENTS_MAX_RETRIES="2",
        COACHUP_ADMIN_TOKEN=ADMIN,
    )
    if redis is not None:
        env["COACHUP_BROKER_URL"] = redis.url
    settings = load_settings(env)
    embedded = EmbeddedBrokerServer(settings) if broker == "embedded" else None  # as `make run` starts it
    from coachup.store import create_store

    create_store(settings.database_url).engine.dispose()  # the schema before two processes race for it
    worker = WorkerProcess(env, data_dir / "worker.log", name=f"fe-{request.param}").wait_ready()
    api = ApiServer(env, data_dir / "api.log").wait_ready()
    stack = Stack(request.param, api, worker, route, settings, data_dir)
    yield stack
    stack.calls["H"] = sum(len(v) for v in route.answers.values())  # callbacks the front end's route received
    print(f"\n[{request.param}] front-end calls replayed: {dict(sorted(stack.calls.items()))}")
    api.stop()
    worker.stop()
    route.close()
    if pg is not None:
        pg.drop()
    if redis is not None:
        redis.close()
    if embedded is not None:
        embedded.close()


def _converse(fe: FrontEnd, turns=CONVERSATION, *, start_ms: int = 1_764_000_000_000, step_ms: int = 7_000) -> list:
    """The voice loop: each user turn, then the coach's reply, ingested one after the other."""
    return [fe.ingest(role, text, ts=start_ms + i * step_ms) for i, (role, text) in enumerate(turns)]


def _wait_callback(stack: Stack, fe: FrontEnd, timeout: float = 30) -> dict:
    def delivered():
        return stack.route.accepted.get(fe.session_id)

    try:
        return wait_until(delivered, timeout=timeout, what="the finalize callback")[0]
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nroute answers: {stack.route.answers.get(fe.session_id)}\nworker log:\n{stack.worker.log_tail(30)}"
        ) from None


def test_health_answers_for_the_front_ends_e2e_setup(stack):
    assert requests.get(stack.api.url + "/health", timeout=5).status_code == 200  # row I
    stack.calls["I"] += 1


def test_a_voice_loop_conversation_lights_the_badge_queues_a_chip_and_shows_the_result(stack):
    fe = stack.frontend()
    rid = base36_id()  # the voice loop's own request ids are short base36 strings

    # row B: the badge is lit while the interaction goes on, off once the coach's closing reply is in
    answers = _converse(fe, CONVERSATION[:3])
    answers.append(fe.ingest(*CONVERSATION[3], ts=1_764_000_021_000, request_id=rid))
    assert answers[-1]["requestId"] == rid  # echoed as sent
    assert [a["state"] for a in answers] == ["active", "active", "active", "idle"]
    assert [a["turnCount"] for a in answers] == [1, 2, 3, 4]
    assert {a["groupId"] for a in answers} == {fe.group_id}
    assert [a["enqueued"] for a in answers] == [False, False, False, True] and [a["deduped"] for a in answers] == [
        False
    ] * 4
    assert fe.state == "idle" and [c.id for c in fe.chips] == [fe.group_id]
    assert all(a["status"] == 200 for a in answers)

    # row C: polling like MicContext, the chip turns done with its summary on the first match
    (chip,) = fe.poll()
    assert chip.status == "done" and chip.summary is not None, chip
    meta = chip.summary["meta"]
    assert all(isinstance(meta[k], (int, float)) for k in ("tokensIn", "tokensOut", "costUsd", "latencyMsTotal"))
    assert len(chip.summary["skillAssessments"]) >= 1 and len(chip.summary["errors"]) == 0
    # the old API's pinned meta: the message count and the duration from the turns' ts
    assert meta["messageCount"] == 4 and meta["durationMs"] == 21_000
    for value in (chip.summary["scores"] or {}).values():
        assert 0.0 <= value <= 1.0

    # row D: the skill page finds its skill's items and renders them
    raw, items = fe.skill_page("clarity_eloquence")
    assert raw is not None and items, raw
    for item in items:
        assert isinstance(item["level"], int) and 0 <= item["level"] <= 10
        for key in ("metCriteria", "unmetCriteria", "feedback"):
            assert isinstance(item[key], list) and all(isinstance(x, str) and x for x in item[key]), (key, item)
        assert all(" " in c for c in item["metCriteria"] + item["unmetCriteria"])  # sentences, not ids
    assert raw["summary"]["rubricVersion"] and isinstance(raw["summary"]["highlights"], list)
    _, other = fe.skill_page("no_such_skill_here")
    assert other == []

    # row H: the callback reached the front end's finalize route in the v2 shape, and every hash resolves
    payload = _wait_callback(stack, fe)
    assert payload["groupId"] == fe.group_id and payload["rubricVersion"] == "v2"
    resolved = {stack.route.resolve(i["skillHash"]) for i in payload["summary"]["skillAssessments"]}
    assert "clarity_eloquence" in resolved and None not in resolved
    assert stack.route.answers[fe.session_id] == [200]
    assert all(h["Authorization"] == f"Bearer {SECRET}" for h in stack.route.requests[fe.session_id])
    # the closing turn's request id followed the job: worker log lines and the callback carry it
    assert stack.route.requests[fe.session_id][0]["x-request-id"] == rid
    wanted = {"assessments_dequeue", "assessments_job_complete", "finalize_delivered"}
    wait_until(
        lambda: wanted <= {e["event"] for e in stack.worker.events() if e.get("requestId") == rid},
        timeout=10,
        what="worker lines with the base36 request id",
    )


def test_turns_that_arrive_together_stay_in_one_interaction(stack):
    # Given the voice loop's fire-and-forget ingests: the user's turn and the coach's reply in flight at once,
    # over and over, on the real server (two gunicorn workers)
    split, wrong_state, rounds = 0, 0, 10
    for _ in range(rounds):
        fe = stack.frontend()
        results: list = [None, None]
        barrier = threading.Barrier(2)

        def send(i, role, text, fe=fe, results=results, barrier=barrier):
            barrier.wait()
            results[i] = fe.ingest(role, text)

        threads = [threading.Thread(target=send, args=(i, *CONVERSATION[i])) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if len({r["groupId"] for r in results}) != 1 or sorted(r["turnCount"] for r in results) != [1, 2]:
            split += 1
        wrong_state += any(r["state"] != "active" for r in results)
    print(f"\n[{stack.name}] {rounds} sessions x 2 turns at once: {split} split, {wrong_state} not active")
    assert (split, wrong_state) == (0, 0), f"{split} of {rounds} sessions split into two groups"


def test_a_new_interaction_never_hides_the_last_result(stack):
    fe = stack.frontend()
    _converse(fe)
    (first,) = fe.poll()
    assert first.status == "done"
    # the next interaction starts before the user looks at the chip again
    fe.ingest("user", "Next, can we work on my opening line?")
    assert fe.state == "active"
    data = requests.get(f"{stack.api.url}/assessments/{fe.session_id}", timeout=10).json()
    assert data["latestGroupId"] == first.id and data["summary"] == first.summary
    assert data["pendingGroupId"] == fe.group_id and data["pendingStatus"] == "active"


def test_the_run_proxy_queues_the_open_interaction(stack):
    fe = stack.frontend()
    for role, text in CONVERSATION[:2]:
        fe.ingest(role, text)
    run = fe.run()  # row E: {sessionId} in the body and ?sessionId= in the URL
    assert run["ok"] and run["groupId"] == fe.group_id
    (chip,) = fe.poll()
    assert chip.status == "done" and chip.summary["meta"]["messageCount"] == 2


def test_tracked_skills_from_the_proxy_and_the_old_apis_service_metrics(stack):
    fe = stack.frontend()
    default = fe.tracked_skills()  # row F
    assert default["source"] == "default" and [s["id"] for s in default["skills"]] == list(
        stack.settings.default_skills
    )
    fe.ingest("user", CONVERSATION[0][1])
    tracked = requests.post(
        stack.api.url + "/messages/ingest",
        json={
            "sessionId": fe.session_id,
            "messageId": "t1x",
            "role": "user",
            "content": "Track my conciseness too.",
            "trackedSkills": ["conciseness", "clarity_eloquence"],
        },
        timeout=10,
    )
    assert tracked.status_code == 200 and tracked.json()["state"] == "active"
    assert [s["id"] for s in fe.tracked_skills()["skills"]] == ["conciseness", "clarity_eloquence"]
    metrics = requests.get(stack.api.url + "/service-metrics", timeout=10).json()
    stack.calls["service-metrics"] += 1
    assert {"queueDepth", "workerConcurrency", "sessionCount", "resultsCount"} <= set(metrics)
    assert metrics["sessionCount"] >= 1 and metrics["workerConcurrency"] == 2  # the stack's worker, -c 2


def test_a_front_end_outage_delays_the_callback_but_never_the_result(stack):
    fe = stack.frontend()
    stack.route.outage(fe.session_id, [503, 503])
    _converse(fe)
    (chip,) = fe.poll()
    assert chip.status == "done"
    _wait_callback(stack, fe)
    assert stack.route.answers[fe.session_id] == [503, 503, 200]


def _letters(stack: Stack) -> list[dict]:
    resp = requests.get(
        stack.api.url + "/api/v1/ops/deadletters?task=callbacks.finalize", headers={"x-admin-token": ADMIN}, timeout=10
    )
    return resp.json()["items"]


def _redrive(stack: Stack) -> dict:
    return requests.post(
        stack.api.url + "/api/v1/ops/deadletters/redrive",
        # a refused callback died of a permanent error: the operator who fixed the front end asks for it
        json={"task": "callbacks.finalize", "includePermanent": True},
        headers={"x-admin-token": ADMIN},
        timeout=10,
    ).json()


def test_a_front_end_that_stays_down_gets_the_callback_after_a_redrive(stack):
    fe = stack.frontend()
    stack.route.outage(fe.session_id, [503, 503, 503])  # longer than the 2 retries the stack allows
    _converse(fe)
    (chip,) = fe.poll()
    assert chip.status == "done"
    letters = wait_until(
        lambda: [x for x in _letters(stack) if x["reason"] == "retries_exhausted"], timeout=30, what="a dead letter"
    )
    assert letters[0]["attempts"] == 3 and stack.route.answers[fe.session_id] == [503, 503, 503]
    assert _redrive(stack)["redriven"] >= 1
    assert _wait_callback(stack, fe)["groupId"] == chip.id
    assert stack.route.answers[fe.session_id] == [503, 503, 503, 200]


def test_a_refused_callback_is_dead_lettered_and_redriven_once_fixed(stack):
    fe = stack.frontend()
    stack.route.secret = "rotated-by-the-front-end"  # our secret no longer matches: 401
    try:
        _converse(fe)
        (chip,) = fe.poll()
        assert chip.status == "done"  # the assessment is unaffected
        letters = wait_until(
            lambda: [x for x in _letters(stack) if x["reason"] == "permanent"], timeout=30, what="a dead letter"
        )
        assert stack.route.answers[fe.session_id] == [401]  # refused once, not retried
        assert letters[0]["reason"] == "permanent" and letters[0]["error_type"] == "persist_rejected"
    finally:
        stack.route.secret = SECRET  # the operator fixes the configuration
    assert _redrive(stack)["redriven"] >= 1
    payload = _wait_callback(stack, fe)
    assert payload["groupId"] == chip.id and stack.route.answers[fe.session_id] == [401, 200]


def test_the_summary_carries_the_old_apis_pinned_rubric_fields(stack):
    fe = stack.frontend()
    _converse(fe)
    (chip,) = fe.poll()
    assert chip.summary["rubricVersion"] == "v2"
    assert chip.summary["categories"] == CATEGORIES
    assert set(chip.summary["scores"]) == set(CATEGORIES)
    assert all(isinstance(i["skill"]["name"], str) and "rubricHash" in i for i in chip.summary["skillAssessments"])
