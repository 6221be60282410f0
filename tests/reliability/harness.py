"""The drills' stack: a private Redis (append-only), a store, real worker subprocesses, and a job ledger.

`DrillStack.submit(n)` stores `n` closed one-turn groups and queues their assessments through the real
publish path (`workers.enqueue.enqueue_assessment`); `tally(job_ids)` counts what the store says came out
(jobs done, failed, still pending, stored results, jobs whose row counts more than one attempt), and
`observed(job_ids)` what the workers' logs say happened: task runs started and completed, per job.

No figure here is one a constraint fixes: results per group cannot exceed one (a unique index) and a job
row cannot vanish, so neither "duplicates" nor "lost" is counted; doubled work shows in `runs`.
"""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import func, select

from coachup.context import RequestContext, new_request_id
from coachup.redaction import Hasher
from coachup.settings import load_settings
from coachup.store import create_store
from coachup.store.models import AssessmentResult, Job
from tests.conftest import TEST_HASH_SECRET
from tests.support.services import PrivateRedis
from tests.support.worker import BeatProcess, WorkerProcess

__all__ = ["DrillStack", "UNACKED", "observed_runs"]

UNACKED = "unacked"  # kombu's Redis hash of delivered-but-unacknowledged messages


class DrillStack:
    def __init__(self, tmp: Path, *, database_url: str, redis: PrivateRedis | None = None, **extra: str) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.redis = redis or PrivateRedis(appendonly=True)
        self.env = {
            "COACHUP_ENV": "test",
            "COACHUP_DATA_DIR": str(tmp),
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "COACHUP_BROKER_URL": self.redis.url,
            "COACHUP_DATABASE_URL": database_url,
            "COACHUP_LOG_LEVEL": "INFO",
            "ASSESSMENTS_BACKOFF_BASE_MS": "50",
            "COACHUP_WORKER_METRICS_PORT": "0",
            **extra,
        }
        try:
            self.settings = load_settings(self.env)
            self.store = create_store(self.settings.database_url)
            from workers import create_celery

            self.celery = create_celery(self.settings)
        except Exception:  # a bad drill configuration must not leave the private redis-server running
            self.redis.close()
            raise
        self.hasher = Hasher(self.settings.hash_secret)
        self.workers: list[WorkerProcess] = []

    def worker(
        self,
        name: str,
        *,
        concurrency: int = 2,
        extra: list[str] | None = None,
        ready: bool = True,
        queues: str = "assessments",
    ) -> WorkerProcess:
        proc = WorkerProcess(
            self.env, self.tmp / f"{name}.log", name=name, queues=queues, concurrency=concurrency, extra=extra
        )
        self.workers.append(proc)
        return proc.wait_ready() if ready else proc

    def beat(self) -> BeatProcess:
        """The scheduler, whose sweep publishes again any job the broker lost (`COACHUP_IDLE_SWEEP_S`)."""
        proc = BeatProcess(self.env, self.tmp / "beat.log")
        self.workers.append(proc)
        return proc.wait_ready()

    def requeued(self) -> int:
        """`job_requeued` events the workers logged (each is one job the sweep published again)."""
        return sum(len(w.events("job_requeued")) for w in self.workers)

    def submit(
        self,
        n: int,
        *,
        # past the 15-word evidence minimum, so each job runs the whole assessment, not the short-speech path
        content: str = "I ran the quarterly review and we shipped on time, then planned the next release with the team.",
        threads: int = 4,
    ) -> list[str]:
        """Queue `n` assessments (one closed group each) through the API's publish path; their job ids."""
        from workers.enqueue import enqueue_assessment

        tag = uuid.uuid4().hex[:8]

        def one(i: int) -> str:
            session = f"drill-{tag}-{i}"
            outcome = self.store.ingest_turn(
                session_id=session,
                message_id="m1",
                role="user",
                content=content,
                ts=None,
                group_id=None,
                end_reason="explicit",
                max_turns=12,
            )
            job_id, _ = enqueue_assessment(
                self.celery,
                self.store,
                self.hasher,
                session_id=session,
                group_id=outcome.group_id,
                ctx=RequestContext(requestId=new_request_id()),
            )
            return job_id

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(n)))

    def tally(self, job_ids: list[str]) -> dict:
        """Jobs in/out for `job_ids` as the store has them: done, failed, pending, results stored, reruns."""
        ids = list(job_ids)
        out = {"jobsIn": len(ids), "done": 0, "failed": 0, "pending": 0, "results": 0, "rerun": 0}
        with self.store.session() as s:
            for chunk in range(0, len(ids), 500):
                part = ids[chunk : chunk + 500]
                for status, count in s.execute(
                    select(Job.status, func.count()).where(Job.id.in_(part)).group_by(Job.status)
                ):
                    key = status if status in ("done", "failed") else "pending"
                    out[key] += count
                out["rerun"] += (
                    s.scalar(select(func.count()).select_from(Job).where(Job.id.in_(part), Job.attempts > 1)) or 0
                )
                out["results"] += (
                    s.scalar(
                        select(func.count()).select_from(AssessmentResult).where(AssessmentResult.job_id.in_(part))
                    )
                    or 0
                )
        return out

    def observed(self, job_ids: list[str]) -> dict:
        """What the workers logged for `job_ids`: task runs started (`assessments_dequeue`: a delivery a
        worker took), runs completed (`assessments_job_complete`), jobs started more than once."""
        return observed_runs(self.workers, job_ids)

    def unacked(self) -> int:
        import redis

        client = redis.Redis.from_url(self.redis.url)
        try:
            return client.hlen(UNACKED)
        finally:
            client.close()

    def broker_state(self, job_ids: list[str] = ()) -> dict:
        """For a failure message: what the private Redis holds for the assessments queue (queued, unacked),
        the status of each unfinished job among `job_ids`, and the tails of the processes' logs."""
        import redis

        client = redis.Redis.from_url(self.redis.url)
        try:
            state = {"queued": client.llen("assessments"), "unacked": client.hlen(UNACKED)}
        finally:
            client.close()
        with self.store.session() as s:
            state["unfinished"] = [
                f"{i}:{st}"
                for i, st in s.execute(
                    select(Job.id, Job.status).where(Job.id.in_(list(job_ids)), Job.status != "done")
                )
            ]
        for w in self.workers:
            state[w.name] = w.log_tail(20)
        return state

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        self.store.engine.dispose()
        self.redis.close()


def observed_runs(workers, job_ids) -> dict:
    """Task runs of `job_ids` in the logs of `workers` (each log read once): `runs` started, `completedRuns`,
    `jobsRun` (jobs started at least once) and `jobsRunTwice` (started more than once)."""
    ids = set(job_ids)
    started: Counter = Counter()
    completed = 0
    for worker in workers:
        for event in worker.events():
            if event.get("taskId") not in ids:
                continue
            if event.get("event") == "assessments_dequeue":
                started[event["taskId"]] += 1
            elif event.get("event") == "assessments_job_complete":
                completed += 1
    return {
        "runs": sum(started.values()),
        "completedRuns": completed,
        "jobsRun": len(started),
        "jobsRunTwice": sum(1 for n in started.values() if n > 1),
    }
