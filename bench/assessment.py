"""Benchmark 2, assessment throughput: real assessment jobs per second per worker process, and CPU per job.

N groups of 4 turns are stored and queued through the project's own path (`enqueue_assessment`), then one
real worker (`celery -A workers worker -c 1`: heuristic provider, 3 skills, SQLite store) drains them. The CPU
time per job of the worker and its child is split into framework overhead (the instrumented no-op's CPU per
task, measured by benchmark 1 on the same broker) and assessment work (the rest).
"""

from __future__ import annotations

import uuid

from bench.common import Worker, bench_env, env_vars, fresh_data_dir, load_average, wait_drained

__all__ = ["assessment_throughput", "store_groups", "enqueue_group", "TURNS", "SKILLS"]

SKILLS = ["clarity_eloquence", "conciseness", "fluency_filler"]
TURNS = [
    ("user", "So, um, I wanted to walk you through the quarterly numbers and, like, what they mean for us."),
    ("assistant", "Sure. Start with the headline figure and then explain the main driver behind it."),
    ("user", "Revenue grew twelve percent, basically because the new onboarding flow cut churn in half."),
    ("user", "Next quarter we will focus on retention, and I think we can keep that momentum going."),
]


def store_groups(store, n: int, prefix: str = "bench") -> list[tuple[str, str]]:
    """`n` closed groups of `TURNS` in `store`, ready to assess: [(session id, group id)]. Their ids carry a tag
    of this call's own: a store the benchmark reuses (`BENCH_DATABASE`) holds an earlier run's groups, whose done
    jobs an enqueue would return (an earlier run's result read as this run's: negative latencies)."""
    groups = []
    tag = uuid.uuid4().hex[:8]
    for i in range(n):
        session, group = f"{prefix}-{tag}-s{i}", f"{prefix}-{tag}-g{i}"
        for j, (role, content) in enumerate(TURNS):
            store.ingest_turn(
                session_id=session,
                message_id=f"{group}:{j}",
                role=role,
                content=content,
                ts=None,
                group_id=group,
                end_reason=None,
                max_turns=10**6,
            )
        store.close_group(session, group, "api")
        groups.append((session, group))
    return groups


def enqueue_group(app, session: str, group: str) -> str:
    """One assessment job for a stored group, through the project's own path; its job id."""
    from coachup.context import RequestContext, new_request_id
    from workers.enqueue import enqueue_assessment

    rt = app.coachup
    job_id, _ = enqueue_assessment(
        app,
        rt.store,
        rt.hasher,
        session_id=session,
        group_id=group,
        ctx=RequestContext(requestId=new_request_id()),
        tracked_skills=SKILLS,
    )
    return job_id


def _queue_jobs(n: int) -> list[str]:
    from workers import create_celery

    app = create_celery()
    return [enqueue_group(app, session, group) for session, group in store_groups(app.coachup.store, n)]


def _statuses(ids: list[str]) -> dict[str, int]:
    from coachup.settings import load_settings
    from coachup.store import create_store

    store = create_store(load_settings().database_url)
    counts: dict[str, int] = {}
    for job_id in ids:
        status = (store.get_job(job_id) or {}).get("status", "missing")
        counts[status] = counts.get(status, 0) + 1
    return counts


def assessment_throughput(broker: str, n: int, framework_cpu_ms: float | None, log=print, database: str = "") -> dict:
    """Jobs/s of one worker process and CPU ms per job (total, framework, assessment); `database`: the store
    (empty: SQLite in the data dir)."""
    data_dir = fresh_data_dir(broker)
    extra = {"AI_PROVIDER_ASSESS": "heuristic", **({"COACHUP_DATABASE_URL": database} if database else {})}
    env = bench_env(broker, data_dir, **extra)
    with env_vars(COACHUP_BROKER_URL=broker, COACHUP_DATA_DIR=data_dir, **extra):
        ids = _queue_jobs(n)
    worker = Worker("workers", env, concurrency=1, name="bench-assess")
    try:
        elapsed, cpu = wait_drained(broker, n, [worker], data_dir=data_dir, timeout=300)
    finally:
        worker.stop()
    with env_vars(COACHUP_BROKER_URL=broker, COACHUP_DATA_DIR=data_dir, **extra):
        statuses = _statuses(ids)
    if set(statuses) != {"done"}:
        raise RuntimeError(f"assessment jobs did not all succeed: {statuses}")
    cpu_ms = cpu * 1000 / n
    framework = min(framework_cpu_ms, cpu_ms) if framework_cpu_ms is not None else None
    out = {
        "jobs": n,
        "worker_processes": 1,
        "provider": "heuristic",
        "turns": len(TURNS),
        "skills": len(SKILLS),
        "store": "postgresql" if database.startswith("postgres") else "sqlite",
        "jobs_per_s": round(n / elapsed, 1),
        "cpu_ms_per_job": round(cpu_ms, 2),
        "framework_cpu_ms_per_job": None if framework is None else round(framework, 2),
        "assessment_cpu_ms_per_job": None if framework is None else round(cpu_ms - framework, 2),
        "loadavg": load_average(),
    }
    log(
        f"assessment_throughput: {out['jobs_per_s']} jobs/s, {out['cpu_ms_per_job']} CPU ms/job "
        f"(framework {out['framework_cpu_ms_per_job']}, assessment {out['assessment_cpu_ms_per_job']})"
    )
    return out
