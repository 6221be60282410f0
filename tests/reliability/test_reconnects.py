"""Issue 16, finding 2: a Redis restart never kills a worker.

Given two real workers consuming a steady load from the test's own Redis (append-only), when that Redis is
killed (SIGKILL, a crash), left down until both workers have noticed, and started again, nine times while
they work, then both worker processes keep
their PIDs and go on consuming, every job is done, and no job's task ran more often than its redeliveries
explain: the runs are counted from the workers' own log events (`DrillStack.observed`), not inferred from the
results table.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.support.wait import wait_until

from .harness import DrillStack
from .record import record

pytestmark = pytest.mark.drill

CYCLES = 9
PER_WAVE = 40
# A worker whose every pool slot is mid-task when Redis dies has no BRPOP in flight (prefetch 1): it meets the
# outage only when a task ends and its ack fails. A task caught writing its result to the dead Redis ends at its
# hard time limit (ASSESSMENT_GROUP_TIMEOUT_MS + 20 s = 28 s below), so the wait for every worker to meet the
# outage outlasts that limit. Seen in CI: 30 s ran out with one worker's two tasks both at their limit.
HARD_LIMIT_S = 8 + 20
MEET_OUTAGE_S = HARD_LIMIT_S + 30


@pytest.fixture
def stack(tmp_path):
    from tests.support.services import PostgresDatabase

    pg = PostgresDatabase()
    s = None
    try:
        s = DrillStack(
            tmp_path,
            database_url=pg.url,
            COACHUP_VISIBILITY_TIMEOUT_S="15",
            ASSESSMENTS_BACKOFF_MAX_MS="2000",
            ASSESSMENT_GROUP_TIMEOUT_MS="8000",
            ASSESSMENT_SKILL_TIMEOUT_MS="5000",
            # a message popped in the instant Redis died, before kombu recorded it as unacked, or a push the
            # killed server had not yet written to its append-only file, is gone from Redis: the scheduler's
            # sweep publishes its job again, after a short wait here
            COACHUP_REQUEUE_AFTER_S="10",
            COACHUP_IDLE_SWEEP_S="2",
        )
        yield s
    finally:
        if s is not None:
            s.close()
        pg.drop()


def _saw_outage(worker, n: int) -> bool:
    """The worker logged its `n`th lost broker connection; fails at once if it died."""
    assert worker.proc.poll() is None, f"{worker.name} died:\n{worker.log_tail(40)}"
    return worker.log_text().count("Connection to broker lost") >= n


def test_redis_killed_and_restarted_five_times_under_load_kills_no_worker_and_loses_no_job(stack):
    workers = [stack.worker("r1", concurrency=2), stack.worker("r2", concurrency=2)]
    stack.beat()
    pids = [w.proc.pid for w in workers]
    jobs: list[str] = []
    started = time.monotonic()
    for cycle in range(CYCLES):
        # a wave of work, and Redis dies while the workers are in the middle of it
        wave = stack.submit(PER_WAVE)
        jobs += wave
        wait_until(lambda w=wave: stack.tally(w)["done"] >= 3, timeout=60, interval=0.1, what=f"wave {cycle} under way")
        stack.redis.kill()
        # Redis stays down until every worker has met the outage: its reconnect then tears the old connection
        # down while the server is gone, which is when kombu 5.7 left a channel to fail on `hostname`
        wait_until(
            lambda c=cycle: all(_saw_outage(w, c + 1) for w in workers),
            timeout=MEET_OUTAGE_S,
            interval=0.05,
            what=f"both workers to see Redis gone ({cycle + 1})",
        )
        stack.redis.start()
        last_restart = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for w in workers:
            assert w.proc.poll() is None, f"{w.name} died after restart {cycle + 1}:\n{w.log_tail(40)}"
    try:
        wait_until(lambda: stack.tally(jobs)["done"] == len(jobs), timeout=240, interval=0.5, what="every job done")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; tally {stack.tally(jobs)}; broker {stack.broker_state(jobs)}") from None
    # the same two processes did the work, before and after every restart
    assert [w.proc.pid for w in workers] == pids and all(w.proc.poll() is None for w in workers)
    for w in workers:
        assert "Unrecoverable error" not in w.log_text(), w.log_tail(60)
    t = stack.tally(jobs)
    assert (t["done"], t["failed"], t["results"]) == (len(jobs), 0, len(jobs)), t
    # every job's task ran at least once (counted from the workers' logs); a job ran twice only when a
    # restart put back a delivery
    seen = stack.observed(jobs)
    assert seen["jobsRun"] == len(jobs) and seen["completedRuns"] >= len(jobs), seen
    for w in workers:
        assert any(e["ts"] > last_restart for e in w.events("assessments_job_start")), f"{w.name} idle since"
    record(
        "fault",
        f"14. Redis SIGKILL + restart x{CYCLES}, two workers under load",
        **t,
        **seen,
        restarts=CYCLES,
        requeued=stack.requeued(),
        recoverS=round(time.monotonic() - started, 2),
    )
