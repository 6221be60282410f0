"""The consumer side of "never doubled": a task holds its job's run lease (`coachup.store.runs`) while it works.

`CoachupTask.begin_run(job_id)` is what every job-tracking task calls right before its provider work, where it
used to mark the row `running`. It claims the lease (one conditional UPDATE) for this delivery:

- claimed: the task goes on; `CoachupTask.__call__` releases the lease when the run ends (success, failure,
  dead letter), and `CoachupTask.retry` releases it before it publishes the retry, so the retry's own
  delivery can claim it at once;
- the job is `done` already (another copy finished it): the copy ends as a no-op (`Ignore`: acked, no state);
- another delivery holds a live lease: the copy is *deferred*, never dropped (the holder may have been killed
  right after claiming). It is published again with the same task id, headers and retry count (a deferral is
  not a failure: it never spends one of the job's retries) and a countdown of the lease's remaining time,
  capped at `DEFER_MAX_S`, and this copy is acked. Its next delivery finds the job done (a no-op) or the lease
  expired (it claims and runs). Should that publish fail, the copy is rejected back onto its queue.

Each deferred or done duplicate logs `duplicate_delivery` (kind, outcome, the lease's remaining seconds; no ids
but the task id the log context carries) and counts `coachup_duplicate_deliveries_total{kind,outcome}`.

The lease lasts the task's hard time limit plus `LEASE_MARGIN_S`: a holder still running is never overtaken,
and one killed (worker SIGKILLed, host lost) holds the job up for at most that long. Sooner on one host: a run
token is `<host hash>.<pid>.<random>`, and a copy that finds the live lease of a process on its own host that no
longer exists (a SIGKILLed pool child or worker; `holder_dead`) takes it over at once (`run_lease_taken_over`,
a warning). A holder on another host, or a pid that still exists, is waited out.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass

from celery.exceptions import Ignore, Reject

from coachup.errors import NotFound, RetryableError
from coachup.jobs import kind_of_task
from coachup.logs import log_event
from coachup.store import runs

from .headers import carried_headers

__all__ = ["DEFER_MAX_S", "LEASE_MARGIN_S", "JobLeased", "HeldRun", "begin_run", "lease_s", "running", "held"]

log = logging.getLogger("coachup.worker")

#: a deferred copy looks again at most this long after (the holder may finish, fail or retry sooner)
DEFER_MAX_S = 10.0
#: beyond the hard time limit: the parent's kill, its dead letter and the clocks of two hosts
LEASE_MARGIN_S = 15.0
_DEFAULT_LIMIT_S = 600.0  # a tracked task without a time limit (none today)


class JobLeased(RetryableError):
    """Another run holds this job's lease (raised only outside a worker, where no copy can be deferred)."""

    type = "job_leased"


@dataclass
class HeldRun:
    """The lease this run holds, if any (one per task call, in a context variable)."""

    store: object = None
    job_id: str | None = None
    token: str | None = None

    def release(self) -> None:
        if self.job_id is None or self.token is None:
            return
        job_id, token = self.job_id, self.token
        self.job_id = self.token = None
        try:
            runs.release(self.store, job_id, token)  # type: ignore[arg-type]
        except Exception as exc:  # the store is down: the lease runs out on its own
            log_event(log, "run_lease_release_error", logging.WARNING, error={"type": type(exc).__name__})


_HELD: contextvars.ContextVar[HeldRun | None] = contextvars.ContextVar("coachup_held_run", default=None)


class running:  # noqa: N801 - used as a context manager, like `contextlib` helpers
    """`with running():` around one task call: whatever lease the call takes is released when it ends."""

    def __enter__(self) -> HeldRun:
        self.held = HeldRun()
        self._token = _HELD.set(self.held)
        return self.held

    def __exit__(self, *exc) -> None:
        try:
            self.held.release()
        finally:
            _HELD.reset(self._token)


def held() -> HeldRun | None:
    """The current task call's lease holder (None outside a task call)."""
    return _HELD.get()


def lease_s(task) -> float:
    """How long a run of `task` holds its lease: its hard time limit (else soft) plus the margin."""
    limit = task.time_limit or task.soft_time_limit or _DEFAULT_LIMIT_S
    return float(limit) + LEASE_MARGIN_S


def _host() -> str:
    """This host, short and opaque: 12 hex digits of a hash of its name (a run token holds it, not the name)."""
    return hashlib.blake2s(socket.gethostname().encode(), digest_size=6).hexdigest()


def new_token() -> str:
    """A run token: `<host>.<pid>.<random>`, so a copy on the same host can tell whether the holder still lives."""
    return f"{_host()}.{os.getpid()}.{uuid.uuid4().hex}"


def holder_dead(token: str) -> bool:
    """True only when `token`'s holder ran on this host in a process that no longer exists (a SIGKILLed pool
    child or worker). Another host's holder, a live pid, or a token of another shape: False (wait for its lease)."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _host() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid() or pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, someone else's
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """A child that was killed but not reaped yet still answers signal 0: read its state."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def begin_run(task, job_id: str) -> None:
    """Claim `job_id`'s run lease for this delivery, or end this copy (done: no-op; leased: deferred)."""
    store = task.runtime.store
    token = new_token()
    outcome = runs.claim(store, job_id, token, lease_s=lease_s(task), dead=holder_dead)
    if outcome.taken_over:
        log_event(log, "run_lease_taken_over", logging.WARNING, kind=_kind_name(task))
    if outcome.claimed:
        current = held()
        if current is not None:
            current.release()  # a second begin_run in one call: keep one lease
            current.store, current.job_id, current.token = store, job_id, token
        return
    if outcome.missing:
        raise NotFound("no job with this id")
    _duplicate(task, outcome)


def _kind_name(task) -> str:
    kind = kind_of_task(task.name)
    return kind.name if kind is not None else task.name


def _duplicate(task, outcome: runs.RunClaim) -> None:
    name = _kind_name(task)
    countdown = min(max(outcome.remaining_s, 1.0), DEFER_MAX_S)
    label = "done" if outcome.done else "deferred"
    _count(task, name, label)
    fields: dict = {"kind": name, "outcome": label, "leaseRemainingS": round(outcome.remaining_s, 1)}
    if not outcome.done:
        fields["deferS"] = round(countdown, 1)
    log_event(log, "duplicate_delivery", **fields)
    if outcome.done:
        raise Ignore()
    if task.request.is_eager or task.request.called_directly:
        raise JobLeased(f"another run holds this job for {outcome.remaining_s:.0f} s more")
    options = task.runtime.broker.defer_options(task.request)
    copy = task.signature_from_request(
        task.request,
        countdown=countdown,
        retries=task.request.retries,  # not a failure: the job's retry budget is untouched
        headers=carried_headers(task.request),
        **options,
    )
    try:
        copy.apply_async()
    except Exception as exc:
        raise Reject(f"deferred copy not published ({type(exc).__name__})", requeue=True) from None
    raise Ignore()


def _count(task, kind: str, outcome: str) -> None:
    try:
        from .metrics_host import metrics_for

        metrics_for(task.app).duplicate_deliveries_total.labels(kind=kind, outcome=outcome).inc()
    except Exception:  # observers never break work
        log.warning("duplicate delivery metric failed", extra={"event": "observer_error"})
