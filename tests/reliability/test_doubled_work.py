"""Issue 16, finding 4: work is never doubled, counted as work done (task runs, publishes), not as rows.

1. Two schedulers on one store: the second stays inert (its log and its metric say so), so the sweep runs at
   the pace of one scheduler and each idle group's assessment runs once.
2. Concurrent `POST /assessments/run` for one session's group: one message is published per group, whatever
   the number of concurrent requests, and every request is answered with that one job.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from coachup.jobs import worker_queues
from coachup.owners import dev_owner
from coachup.store.owners import claim_session
from tests.support.broker import waiting_envelopes
from tests.support.outbox import wait_published
from tests.support.services import PostgresDatabase, free_port
from tests.support.wait import wait_until
from tests.support.worker import BeatProcess

from .harness import DrillStack
from .record import record

pytestmark = pytest.mark.drill
TEXT = "I ran the quarterly review and we shipped on time, then planned the next release with the team."


def _idle_groups(stack: DrillStack, n: int) -> list[tuple[str, str]]:
    """`n` closed groups with no job: exactly what the scheduler's sweep queues."""
    tag = uuid.uuid4().hex[:8]
    out = []
    for i in range(n):
        outcome = stack.store.ingest_turn(
            session_id=f"beat-{tag}-{i}",
            message_id="m1",
            role="user",
            content=TEXT,
            ts=None,
            group_id=None,
            end_reason="explicit",
            max_turns=12,
        )
        # the API (no JWKS here) acts for the dev subject: the session is theirs, as if they had written it
        claim_session(stack.store, f"beat-{tag}-{i}", dev_owner(stack.hasher))
        out.append((f"beat-{tag}-{i}", outcome.group_id))
    return out


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _leader_value(port: int) -> float:
    for line in _scrape(port).splitlines():
        if line.startswith("coachup_scheduler_leader "):
            return float(line.split()[1])
    raise AssertionError("coachup_scheduler_leader not exported")


def test_a_second_scheduler_stays_inert_and_every_group_is_assessed_once(tmp_path):
    pg = PostgresDatabase()
    stack = DrillStack(tmp_path, database_url=pg.url, COACHUP_IDLE_SWEEP_S="1", COACHUP_SCHEDULER_LEASE_S="3")
    try:
        groups = _idle_groups(stack, 20)
        worker = stack.worker("beatw", queues=",".join(worker_queues()), concurrency=2)
        beats, ports = [], []
        started = time.monotonic()
        for name in ("beat-a", "beat-b"):
            port = free_port()
            env = {**stack.env, "COACHUP_DATA_DIR": str(tmp_path / name), "COACHUP_BEAT_METRICS_PORT": str(port)}
            (tmp_path / name).mkdir()
            beat = BeatProcess(env, tmp_path / f"{name}.log", name=name)
            stack.workers.append(beat)
            beats.append(beat.wait_ready())
            ports.append(port)

        def assessed() -> int:
            return len(worker.events("assessments_job_complete"))

        wait_until(lambda: assessed() >= len(groups), timeout=40, what=f"every group assessed ({stack.broker_state()})")
        sweeps_before = len([e for e in worker.events("task_complete") if e.get("task") == "interactions.sweep"])
        wait_until(
            lambda: (
                len([e for e in worker.events("task_complete") if e.get("task") == "interactions.sweep"])
                > sweeps_before + 3
            ),
            timeout=20,
            what="a few more sweeps",
        )
        elapsed = time.monotonic() - started
        sweeps = len([e for e in worker.events("task_complete") if e.get("task") == "interactions.sweep"])
        standby = [b for b in beats if b.events("scheduler_standby")]
        leaders = sorted(_leader_value(p) for p in ports)
        # Then one scheduler sends (one sweep a second at most) and the other says it is inert
        assert len(standby) == 1 and leaders == [0.0, 1.0], (len(standby), leaders)
        assert sweeps <= elapsed / 1 + 2, (sweeps, elapsed)
        # and each group's assessment ran once: one job run and one skill call per default skill per group
        skill_calls = len(worker.events("assessment_skill_complete"))
        assert assessed() == len(groups)
        assert skill_calls == len(groups) * len(stack.settings.default_skills), skill_calls
        record(
            "fault",
            "10. two schedulers, 20 idle groups",
            groups=len(groups),
            assessmentRuns=assessed(),
            skillCalls=skill_calls,
            sweeps=sweeps,
            seconds=round(elapsed, 1),
            standbySchedulers=len(standby),
        )
    finally:
        stack.close()
        pg.drop()


def test_concurrent_runs_for_one_group_publish_one_job(tmp_path):
    from web import create_app

    pg = PostgresDatabase()
    stack = DrillStack(tmp_path, database_url=pg.url)
    try:
        app = create_app(stack.settings, celery_app=stack.celery, configure_logs=False)
        trials, published, answers = 10, 0, []
        for trial in range(trials):
            session, group = _idle_groups(stack, 1)[0]
            before = len(waiting_envelopes(stack.celery, ["assessments"]))

            def run(_i, session=session, group=group):
                resp = app.test_client().post("/assessments/run", json={"sessionId": session, "groupId": group})
                return resp.status_code, resp.get_json().get("taskId")

            with ThreadPoolExecutor(6) as pool:
                results = list(pool.map(run, range(6)))
            wait_published(stack.store)  # the outbox relay publishes after the answers
            published += len(waiting_envelopes(stack.celery, ["assessments"])) - before
            answers.append(results)
            assert all(status == 202 for status, _ in results), results
            assert len({task for _, task in results}) == 1, (trial, results)
        assert published == trials, published
        record(
            "fault",
            "11. 6 concurrent runs per group, 10 groups",
            trials=trials,
            requests=6 * trials,
            published=published,
        )
    finally:
        stack.close()
        pg.drop()
