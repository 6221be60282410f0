"""The job kinds: one entry each; queues, routes, SQS names, enqueue and requeue are derived from this table.

A `JobKind` says everything the worker layer needs to know about one kind of background work:

- `task`, `queue`: the Celery task name and the logical queue it is routed to (the same name on every broker;
  on SQS each logical queue maps to a real queue named by `COACHUP_SQS_<QUEUE>_QUEUE`).
- `module`: the task module whose `register(app)` defines the task (`workers.create_celery` imports it).
- `tracks_job`: a store row (id = task id) mirrors its state (`queued` -> `running` -> `done`/`failed`).
- `requeue`: the scheduler's sweep may publish it again when the broker lost its message (needs `tracks_job`).
- `dead_letter`: a job that dies for good becomes a dead letter (False: a periodic task, or the letter
  recorder itself; the next tick, or the recorder's own retries, are their safety net).
- `max_retries`: the name of the `Settings` field that holds it (default `"max_retries"`:
  ASSESSMENTS_MAX_RETRIES), a number, or None (retry for ever).
- `idempotency`: why running the job twice is harmless (at-least-once delivery makes that happen).
- `headers`: the message headers (request context, hashed ids; never a raw id or text).
- `fifo_group` / `fifo_dedup`: on an SQS FIFO queue, the MessageGroupId (jobs of one group run in order) and
  the MessageDeduplicationId (SQS drops a double submit within 5 minutes).
- `observer`: the `workers.observers` class that turns this kind's task events into logs and metrics.
- `schedule`: for a periodic kind, the `Settings` field holding its period in seconds (the scheduler,
  `coachup beat`, runs it; Celery's `beat_schedule` is derived from these).

Adding a kind is one entry here plus one task module (docs/development.md shows the diff). Pure core: no
Celery, no broker, no environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .context import RequestContext
from .redaction import Hasher

__all__ = [
    "Queue",
    "JobRef",
    "JobKind",
    "QUEUES",
    "JOBS",
    "job_kind",
    "kind_of_task",
    "queue_names",
    "worker_queues",
    "task_routes",
    "task_modules",
    "requeued_kinds",
    "periodic_kinds",
    "context_headers",
    "group_headers",
    "session_headers",
    "speech_headers",
]


@dataclass(frozen=True)
class Queue:
    """One logical queue: its name on every broker, its default SQS queue, FIFO or standard on SQS."""

    name: str
    sqs_name: str
    fifo: bool = False  # one session's jobs in order (SQS FIFO); Redis lists are FIFO already


@dataclass(frozen=True)
class JobRef:
    """What a job's message is built from: its row's session, group and params (never sent raw)."""

    session_id: str | None = None
    group_id: str | None = None
    params: dict = field(default_factory=dict)


Headers = Callable[[RequestContext, Hasher, JobRef], dict]
FifoKey = Callable[[Hasher, JobRef], str | None]


def context_headers(ctx: RequestContext, hasher: Hasher, job: JobRef) -> dict:
    """The request context only (request id, traceparent)."""
    return ctx.to_headers()


def group_headers(ctx: RequestContext, hasher: Hasher, job: JobRef) -> dict:
    """The request context with the hashed session and group of an interaction group's job."""
    return ctx.with_(sessionIdHash=hasher.session(job.session_id), groupId=hasher.group(job.group_id)).to_headers()


def session_headers(ctx: RequestContext, hasher: Hasher, job: JobRef) -> dict:
    """The request context with the hashed session of a session-wide job (its rolling summary)."""
    return ctx.with_(sessionIdHash=hasher.session(job.session_id)).to_headers()


def speech_headers(ctx: RequestContext, hasher: Hasher, job: JobRef) -> dict:
    """The request context, the speech provider, and the hashed session and group when the job has them."""
    changes = {"provider": job.params.get("provider")}
    if job.session_id:
        changes["sessionIdHash"] = hasher.session(job.session_id)
    if job.group_id:
        changes["groupId"] = hasher.group(job.group_id)
    return ctx.with_(**changes).to_headers()


def _session_group(hasher: Hasher, job: JobRef) -> str | None:
    return hasher.session(job.session_id)


def _session_and_group(hasher: Hasher, job: JobRef) -> str | None:
    return "d:" + hasher.digest(f"{job.session_id}:{job.group_id}")


@dataclass(frozen=True)
class JobKind:
    """One kind of background work (see the module docstring for each field)."""

    name: str
    task: str
    queue: str
    module: str
    tracks_job: bool = True
    requeue: bool = False
    dead_letter: bool = True
    max_retries: int | str | None = "max_retries"
    idempotency: str = ""
    headers: Headers = context_headers
    fifo_group: FifoKey | None = None
    fifo_dedup: FifoKey | None = None
    observer: str = "workers.observers.tasks:TaskObserver"
    schedule: str | None = None
    test_only: bool = False


QUEUES: tuple[Queue, ...] = (
    Queue("assessments", "coach-up-assessments.fifo", fifo=True),
    Queue("stt", "coach-up-stt"),
    Queue("tts", "coach-up-tts"),
    Queue("callbacks", "coach-up-callbacks"),
    Queue("summaries", "coach-up-summaries"),
    Queue("deadletter", "coach-up-deadletter"),
)

JOBS: tuple[JobKind, ...] = (
    JobKind(
        "assessment",
        task="assessments.run",
        queue="assessments",
        module="workers.tasks.assessments",
        requeue=True,
        idempotency="one stored summary per (session, group); a rerun finds it and writes nothing",
        headers=group_headers,
        fifo_group=_session_group,
        fifo_dedup=_session_and_group,
        observer="workers.observers.assessment:AssessmentObserver",
    ),
    JobKind(
        "stt",
        task="stt.transcribe",
        queue="stt",
        module="workers.tasks.speech",
        requeue=True,
        idempotency="a job whose row is `done` with a result is not run again",
        headers=speech_headers,
    ),
    JobKind(
        "tts",
        task="tts.synthesize",
        queue="tts",
        module="workers.tasks.speech",
        requeue=True,
        idempotency="a job whose row is `done` with a result is not run again",
        headers=speech_headers,
    ),
    JobKind(
        "finalize",
        task="callbacks.finalize",
        queue="callbacks",
        module="workers.tasks.callbacks",
        requeue=True,
        max_retries="persist_max_retries",  # PERSIST_ASSESSMENTS_MAX_RETRIES: a front end may be down a while
        idempotency="one job per group (a unique index); a job already done is not sent again, and the front "
        "end's finalize route is idempotent per (session, group)",
        headers=group_headers,
    ),
    JobKind(
        "summary",
        task="summaries.refresh",
        queue="summaries",
        module="workers.tasks.summaries",
        requeue=True,
        idempotency="one job per window (`summary_windows` key); versions are unique per session, and a job "
        "whose turns a newer version already covers writes nothing",
        headers=session_headers,
    ),
    JobKind(
        "interactions.sweep",
        task="interactions.sweep",
        queue="assessments",
        module="workers.tasks.interactions",
        tracks_job=False,
        dead_letter=False,
        max_retries=0,
        idempotency="closing an idle group and queueing a closed group are conditional updates",
        schedule="idle_sweep_s",
    ),
    JobKind(
        "jobs.requeue",
        task="jobs.requeue",
        queue="assessments",
        module="workers.tasks.requeue",
        tracks_job=False,
        dead_letter=False,
        max_retries=0,
        idempotency="a lost job is claimed (a conditional update of its row) before it is published again",
        schedule="idle_sweep_s",
    ),
    JobKind(
        "deadletter.record",
        task="deadletter.record",
        queue="deadletter",
        module="workers.tasks.deadletters",
        tracks_job=False,
        dead_letter=False,
        max_retries=None,
        idempotency="a letter is inserted once by its id (`<task id>.<redrives>`)",
    ),
    JobKind(
        "deadletters.resend",
        task="deadletters.resend",
        queue="assessments",
        module="workers.tasks.deadletters",
        tracks_job=False,
        dead_letter=False,
        max_retries=0,
        idempotency="a ledgered letter is claimed (a conditional update) before it is published again, and "
        "recorded once by its id",
        schedule="idle_sweep_s",
    ),
    JobKind(
        "idempotency.expire",
        task="idempotency.expire",
        queue="assessments",
        module="workers.tasks.housekeeping",
        tracks_job=False,
        dead_letter=False,
        max_retries=0,
        idempotency="deleting keys older than the TTL twice deletes nothing more",
        schedule="idle_sweep_s",
    ),
    JobKind(
        "testing",
        task="testing.*",
        queue="assessments",
        module="workers.tasks.testing",
        tracks_job=False,
        idempotency="effects are files created once",
        test_only=True,
    ),
)

_BY_NAME = {k.name: k for k in JOBS}
_BY_TASK = {k.task: k for k in JOBS}


def job_kind(name: str) -> JobKind:
    """The kind called `name` (the job row's `kind`); KeyError names the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown job kind {name!r} (known: {', '.join(_BY_NAME)})") from None


def kind_of_task(task_name: str) -> JobKind | None:
    """The kind whose task is `task_name` (a `prefix.*` entry matches every task of the prefix)."""
    kind = _BY_TASK.get(task_name)
    if kind is None:
        kind = _BY_TASK.get(task_name.split(".", 1)[0] + ".*")
    return kind


def queue_names() -> tuple[str, ...]:
    """Every logical queue, in declaration order."""
    return tuple(q.name for q in QUEUES)


def worker_queues(*, test_tasks: bool = False) -> tuple[str, ...]:
    """The queues a worker consumes by default (`coachup worker -Q`): every queue some kind is routed to."""
    used = {k.queue for k in JOBS if test_tasks or not k.test_only}
    return tuple(q for q in queue_names() if q in used)


def task_routes() -> dict[str, dict[str, str]]:
    """Celery's `task_routes`: each task to its queue, and each task-name prefix (`stt.*`) whose kinds all
    share one queue, so a task added under a kind's prefix lands on that kind's queue (exact names win)."""
    routes = {k.task: {"queue": k.queue} for k in JOBS}
    prefixes: dict[str, set[str]] = {}
    for k in JOBS:
        prefixes.setdefault(k.task.split(".", 1)[0] + ".*", set()).add(k.queue)
    for pattern, queues in prefixes.items():
        if len(queues) == 1 and pattern not in routes:
            routes[pattern] = {"queue": queues.pop()}
    return routes


def task_modules(*, test_tasks: bool = False) -> tuple[str, ...]:
    """The task modules to import and `register(app)`, each once, in declaration order."""
    return tuple(dict.fromkeys(k.module for k in JOBS if test_tasks or not k.test_only))


def periodic_kinds() -> tuple[JobKind, ...]:
    """The kinds the scheduler runs every `getattr(settings, kind.schedule)` seconds."""
    return tuple(k for k in JOBS if k.schedule)


def requeued_kinds() -> tuple[JobKind, ...]:
    """The kinds whose lost messages the sweep publishes again."""
    return tuple(k for k in JOBS if k.requeue)
