"""Every Prometheus metric of the project, declared once on an injectable registry.

`Metrics(registry)` builds all families; the helper methods are what the rest of the code calls, so label
names and values stay bounded (task, queue, status, provider, model, route, op). Never a user or session id.
`docs/observability.md` maps each reference name (`next.request.count`, `coachup_sqs_send_seconds`, ...) to
the name exported here.
"""

from __future__ import annotations

import platform
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics", "SQS_OPS", "TASK_STATUSES", "WORKER_ONLY_FAMILIES", "BUILD_INFO"]

#: unlabelled families that only a worker moves: every process creates them at zero, so the API's
#: /metrics leaves them out instead of serving series that never change (docs/observability.md)
WORKER_ONLY_FAMILIES = (
    "coachup_assessments_enqueue_latency_seconds",
    "coachup_assessments_retries",
    "coachup_assessments_queue_depth",
    "coachup_assessments_skipped",
    "coachup_sqs_receive_seconds",
    "coachup_sqs_delete_seconds",
    "coachup_sqs_change_visibility_seconds",
)
BUILD_INFO = "coachup_build_info"

# Queue wait and enqueue->dequeue latency: the alert fires at p95 > 5 s; up to 10 min covers a backlog.
_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# One assessment job: the group timeout is 15 s and the alert fires at p95 > 10 s.
_JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 7.5, 10, 15, 20, 30, 60)
# One provider call (LLM target < 1.5 s, skill timeout 8 s) and one skill.
_PROVIDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 8, 15)
# HTTP requests: the API enqueues and reads (ms); the target is p95 < 2 s.
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)
# SQS API calls: a long poll waits up to 20 s; a send should take milliseconds.
_SQS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30)
# Chat time to first token: the alert fires at p95 > 2 s, the deadline ends a stream at 8 s.
_FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 15)
# A whole chat stream: a spoken reply streams for a few seconds; CHAT_STREAM_MAX_S caps it at 120 s.
_STREAM_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120, 300)
# Generic task runtime: from no-op tasks (ms) to the longest speech job.
_RUNTIME_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

SQS_OPS = ("send", "receive", "delete", "change_visibility")
TASK_STATUSES = ("received", "started", "succeeded", "failed", "retried")
_SQS_COUNTERS = {"send": "enqueued", "delete": "deleted", "change_visibility": "visibility"}


def _version() -> str:
    try:
        return metadata.version("coachup")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


class Metrics:
    """All metric families on `registry` (a fresh `CollectorRegistry` when omitted)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # ---- assessment worker (reference section 7 and the per-skill metrics) ----
        self.assessment_job_seconds = Histogram(
            "coachup_assessment_job_seconds",
            "Assessment job duration, dequeue to stored summary (s).",
            ["rubric_version"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.assessments_enqueue_latency_seconds = Histogram(
            "coachup_assessments_enqueue_latency_seconds",
            "Assessment enqueue to dequeue latency (s).",
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.assessments_retries_total = Counter(
            "coachup_assessments_retries", "Assessment job retries scheduled.", registry=r
        )
        self.assessments_jobs_total = Counter(
            "coachup_assessments_jobs", "Assessment jobs finished, by status (success|failure).", ["status"], registry=r
        )
        self.assessments_queue_depth = Gauge(
            "coachup_assessments_queue_depth",
            "Messages waiting in the assessments queue (sampled).",
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.assessment_skill_seconds = Histogram(
            "coachup_assessment_skill_seconds",
            "One skill's assessment (s).",
            ["provider", "model", "rubric_version"],
            buckets=_PROVIDER_BUCKETS,
            registry=r,
        )
        self.assessments_skipped_total = Counter(
            "coachup_assessments_skipped",
            "Assessment groups with no user speech, stored as skipped (a normal outcome, not a failure).",
            registry=r,
        )
        self.assessment_skill_errors_total = Counter(
            "coachup_assessment_skill_errors",
            "Skills that failed, by error type.",
            ["provider", "model", "reason"],
            registry=r,
        )
        # ---- every queue, from the broker itself ----
        self.queue_depth = Gauge(
            "coachup_queue_depth",
            "Messages waiting in a broker queue (sampled by the worker main process).",
            ["queue"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.build_info = Gauge(
            BUILD_INFO,
            "Always 1; the labels say which build runs (version of the coachup package, Python version).",
            ["version", "python"],
            multiprocess_mode="max",
            registry=r,
        )
        self.build_info.labels(_version(), platform.python_version()).set(1)
        # ---- liveness: a worker, its broker and the scheduler say they are alive (docs/runbooks/liveness.md) ----
        self.worker_heartbeat = Gauge(
            "coachup_worker_heartbeat_timestamp_seconds",
            "Unix time of the worker main process's last heartbeat (one per COACHUP_QUEUE_DEPTH_INTERVAL_S).",
            ["host"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.worker_broker_connected = Gauge(
            "coachup_worker_broker_connected",
            "1 when the worker main process's last broker round trip (the depth sample) succeeded, else 0.",
            ["host"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.queue_depth_sampled_at = Gauge(
            "coachup_queue_depth_sample_timestamp_seconds",
            "Unix time of the broker read the coachup_queue_depth series carry (NaN depths: the last read failed).",
            ["host"],  # labelled so a process that never samples (the API) exports no series at all
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.scheduler_last_sweep = Gauge(
            "coachup_scheduler_last_sweep_timestamp_seconds",
            "Unix time the scheduler's periodic sweep (interactions.sweep) last finished without error.",
            ["host"],  # the worker host that ran it; labelled so the API exports no series
            multiprocess_mode="max",
            registry=r,
        )
        self.queue_in_flight = Gauge(
            "coachup_queue_in_flight",
            "Messages taken but not yet acked (SQS not-visible, Redis unacked).",
            ["queue"],
            multiprocess_mode="mostrecent",
            registry=r,
        )
        # ---- generic task lifecycle ----
        self.tasks_total = Counter(
            "coachup_tasks",
            "Task lifecycle transitions by status (received|started|succeeded|failed|retried).",
            ["task", "queue", "status"],
            registry=r,
        )
        self.task_runtime_seconds = Histogram(
            "coachup_task_runtime_seconds",
            "Task body runtime (s) by final state.",
            ["task", "queue", "status"],
            buckets=_RUNTIME_BUCKETS,
            registry=r,
        )
        self.task_queue_wait_seconds = Histogram(
            "coachup_task_queue_wait_seconds",
            "Publish to start of execution (s).",
            ["task", "queue"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.tasks_in_progress = Gauge(
            "coachup_tasks_in_progress",
            "Tasks executing now (dead processes are swept).",
            ["task", "queue"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.deadletters_total = Counter(
            "coachup_deadletters",
            "Jobs moved to the dead-letter queue, by task and error type.",
            ["task", "reason"],
            registry=r,
        )
        self.deadletters_resent_total = Counter(
            "coachup_deadletters_resent",
            "Dead letters the broker lost before they were recorded, published again from the store's ledger.",
            ["task"],
            registry=r,
        )
        self.scheduler_leader = Gauge(
            "coachup_scheduler_leader",
            "1 while this scheduler holds the lease and sends periodic tasks, 0 while it stands by.",
            multiprocess_mode="liveall",
            registry=r,
        )
        self.scheduler_standby_ticks_total = Counter(
            "coachup_scheduler_standby_ticks",
            "Scheduler ticks skipped because another scheduler holds the lease.",
            registry=r,
        )
        self.messages_quarantined_total = Counter(
            "coachup_messages_quarantined",
            "Broker messages no worker could decode, moved to the quarantine (workers/quarantine.py).",
            ["queue", "reason"],
            registry=r,
        )
        self.duplicate_deliveries_total = Counter(
            "coachup_duplicate_deliveries",
            "Second copies of a job's message that found another run's lease (deferred) or the job done "
            "(a no-op), so they called no provider (workers/run_lease.py).",
            ["kind", "outcome"],
            registry=r,
        )
        # ---- the outbox relay (workers/relay.py): commit -> broker lag, and what still waits ----
        self.outbox_publish_lag_seconds = Histogram(
            "coachup_outbox_publish_lag_seconds",
            "Outbox relay lag: job row committed to message accepted by the broker (s).",
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.outbox_publishes_total = Counter(
            "coachup_outbox_publishes",
            "Outbox relay publishes by result (ok|error); an error leaves the row for a later pass.",
            ["status"],
            registry=r,
        )
        self.outbox_pending_jobs = Gauge(
            "coachup_outbox_pending_jobs",
            "Job rows committed but not yet published (as last counted by a relay).",
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.outbox_oldest_pending_age_seconds = Gauge(
            "coachup_outbox_oldest_pending_age_seconds",
            "Age of the oldest job row not yet published (s; 0 when none).",
            multiprocess_mode="mostrecent",
            registry=r,
        )
        self.jobs_requeued_total = Counter(
            "coachup_jobs_requeued",
            "Jobs published again because the broker lost their message.",
            ["kind", "queue"],
            registry=r,
        )
        # ---- HTTP (reference next.request.*) ----
        self.http_server_rejections_total = Counter(
            "coachup_http_server_rejections",
            "Requests the server answered itself, outside the app: gunicorn's parse and limit errors "
            "(400, 414, 431, ...) and requests past the worker timeout (504), by status and error type.",
            ["status", "type"],
            registry=r,
        )
        self.http_requests_total = Counter(
            "coachup_http_requests",
            "HTTP requests by canonical route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_request_errors_total = Counter(
            "coachup_http_request_errors", "HTTP requests answered 4xx/5xx.", ["route", "method", "status"], registry=r
        )
        self.http_request_latency_seconds = Histogram(
            "coachup_http_request_latency_seconds",
            "HTTP request latency (s).",
            ["route", "method"],
            buckets=_HTTP_BUCKETS,
            registry=r,
        )
        # ---- providers (reference next.provider.*, provider.*, py.provider.*) ----
        self.provider_requests_total = Counter(
            "coachup_provider_requests", "Upstream provider calls.", ["kind", "provider", "model", "status"], registry=r
        )
        self.provider_errors_total = Counter(
            "coachup_provider_errors",
            "Upstream provider calls that failed.",
            ["kind", "provider", "model", "reason"],
            registry=r,
        )
        self.provider_latency_seconds = Histogram(
            "coachup_provider_latency_seconds",
            "Upstream provider call latency (s).",
            ["kind", "provider", "model"],
            buckets=_PROVIDER_BUCKETS,
            registry=r,
        )
        self.provider_tokens_in_total = Counter(
            "coachup_provider_tokens_in", "Prompt tokens sent.", ["provider", "model"], registry=r
        )
        self.provider_tokens_out_total = Counter(
            "coachup_provider_tokens_out", "Completion tokens received.", ["provider", "model"], registry=r
        )
        self.provider_cost_cents_total = Counter(
            "coachup_provider_cost_cents", "Estimated provider cost (US cents).", ["provider", "model"], registry=r
        )
        # ---- chat streams (reference next.sse.first_token_ms, next.stream.*): provider and model only ----
        self.chat_first_token_seconds = Histogram(
            "coachup_chat_first_token_seconds",
            "Chat stream request to first reply token written (s).",
            ["provider", "model"],
            buckets=_FIRST_TOKEN_BUCKETS,
            registry=r,
        )
        self.chat_stream_duration_seconds = Histogram(
            "coachup_chat_stream_duration_seconds",
            "Chat stream duration, request to last byte or disconnect (s).",
            ["provider", "model"],
            buckets=_STREAM_BUCKETS,
            registry=r,
        )
        self.chat_streams_total = Counter(
            "coachup_chat_streams", "Chat streams finished (any outcome).", ["provider", "model"], registry=r
        )
        self.chat_stream_disconnects_total = Counter(
            "coachup_chat_stream_disconnects",
            "Chat streams the client left before the end.",
            ["provider", "model"],
            registry=r,
        )
        self.chat_stream_timeouts_total = Counter(
            "coachup_chat_stream_timeouts",
            "Chat streams ended because no first token came before CHAT_FIRST_TOKEN_TIMEOUT_MS.",
            ["provider", "model"],
            registry=r,
        )
        self.chat_stream_errors_total = Counter(
            "coachup_chat_stream_errors", "Chat streams ended by a provider error.", ["provider", "model"], registry=r
        )
        # labelled so a process that never streams (a worker, the scheduler) writes no live-gauge file
        self.chat_streams_open = Gauge(
            "coachup_chat_streams_open",
            "Chat streams open now (summed over API processes).",
            ["provider", "model"],
            multiprocess_mode="livesum",
            registry=r,
        )
        # ---- speech and storage (reference next.audio.*, next.storage.*) ----
        self.audio_bytes_in_total = Counter(
            "coachup_audio_bytes_in", "Audio bytes received or fetched for speech-to-text.", ["provider"], registry=r
        )
        self.audio_bytes_out_total = Counter(
            "coachup_audio_bytes_out", "Synthesised audio bytes returned.", ["provider"], registry=r
        )
        self.storage_bytes_uploaded_total = Counter(
            "coachup_storage_bytes_uploaded", "Bytes uploaded to object storage.", ["storage"], registry=r
        )
        # ---- SQS transport calls (reference section 7) ----
        self.sqs_seconds = {
            op: Histogram(
                f"coachup_sqs_{op}_seconds", f"SQS {op} API call latency (s).", buckets=_SQS_BUCKETS, registry=r
            )
            for op in SQS_OPS
        }
        self.sqs_messages_enqueued_total = Counter(
            "coachup_sqs_messages_enqueued", "SQS SendMessage results (ok|error).", ["status"], registry=r
        )
        self.sqs_messages_polled_total = Counter(
            "coachup_sqs_messages_polled", "SQS ReceiveMessage outcomes (message|empty|error).", ["outcome"], registry=r
        )
        self.sqs_messages_deleted_total = Counter(
            "coachup_sqs_messages_deleted", "SQS DeleteMessage results (ok|error).", ["status"], registry=r
        )
        self.sqs_visibility_changes_total = Counter(
            "coachup_sqs_visibility_changes", "SQS ChangeMessageVisibility results (ok|error).", ["status"], registry=r
        )

    # ---- helpers the rest of the code calls -------------------------------------------------------------
    def record_server_rejection(self, status: int, kind: str) -> None:
        """One request the HTTP server answered itself (`web/gunicorn_worker.py`)."""
        self.http_server_rejections_total.labels(str(status), kind).inc()

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request; `route` is the canonical `METHOD /path/{param}` form."""
        labels = (route, method, str(status))
        self.http_requests_total.labels(*labels).inc()
        if status >= 400:
            self.http_request_errors_total.labels(*labels).inc()
        self.http_request_latency_seconds.labels(route, method).observe(max(0.0, seconds))

    def observe_provider_call(
        self,
        kind: str,
        provider: str,
        model: str,
        seconds: float,
        *,
        error: str | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_cents: float = 0.0,
    ) -> None:
        """One upstream call: `kind` is chat|stt|tts; `error` a short type (timeout, rate_limited) or None."""
        self.provider_requests_total.labels(kind, provider, model, "error" if error else "ok").inc()
        self.provider_latency_seconds.labels(kind, provider, model).observe(max(0.0, seconds))
        if error:
            self.provider_errors_total.labels(kind, provider, model, error).inc()
        if tokens_in:
            self.provider_tokens_in_total.labels(provider, model).inc(tokens_in)
        if tokens_out:
            self.provider_tokens_out_total.labels(provider, model).inc(tokens_out)
        if cost_cents:
            self.provider_cost_cents_total.labels(provider, model).inc(cost_cents)

    def observe_chat_stream(
        self, provider: str, model: str, *, outcome: str, first_token_s: float | None, duration_s: float
    ) -> None:
        """One finished chat stream; `outcome` is completed | disconnect | timeout | error."""
        self.chat_streams_total.labels(provider, model).inc()
        if first_token_s is not None:
            self.chat_first_token_seconds.labels(provider, model).observe(max(0.0, first_token_s))
        self.chat_stream_duration_seconds.labels(provider, model).observe(max(0.0, duration_s))
        counter = {
            "disconnect": self.chat_stream_disconnects_total,
            "timeout": self.chat_stream_timeouts_total,
            "error": self.chat_stream_errors_total,
        }.get(outcome)
        if counter is not None:
            counter.labels(provider, model).inc()

    def observe_sqs_call(self, op: str, seconds: float, ok: bool, *, messages: int = 1) -> None:
        """One SQS API call (`op` in `SQS_OPS`); for `receive`, `messages` is how many came back."""
        self.sqs_seconds[op].observe(max(0.0, seconds))
        status = "ok" if ok else "error"
        if op == "receive":
            if not ok:
                self.sqs_messages_polled_total.labels("error").inc()
            elif messages:
                self.sqs_messages_polled_total.labels("message").inc(messages)
            else:
                self.sqs_messages_polled_total.labels("empty").inc()
        elif op == "send":
            self.sqs_messages_enqueued_total.labels(status).inc(messages)
        elif op == "delete":
            self.sqs_messages_deleted_total.labels(status).inc(messages)
        else:
            self.sqs_visibility_changes_total.labels(status).inc(messages)

    def observe_audio(self, *, provider: str, bytes_in: int = 0, bytes_out: int = 0) -> None:
        """Audio received for STT (`bytes_in`) or synthesised by TTS (`bytes_out`)."""
        if bytes_in:
            self.audio_bytes_in_total.labels(provider).inc(bytes_in)
        if bytes_out:
            self.audio_bytes_out_total.labels(provider).inc(bytes_out)

    def observe_upload(self, storage: str, nbytes: int) -> None:
        """Bytes uploaded to object storage (`storage`: s3|local)."""
        self.storage_bytes_uploaded_total.labels(storage).inc(nbytes)

    def record_deadletter(self, task: str, reason: str) -> None:
        """One job dead-lettered; `reason` is the error type (never its message)."""
        self.deadletters_total.labels(task, reason).inc()

    def record_skipped_group(self) -> None:
        """One group stored as skipped because it held no user speech."""
        self.assessments_skipped_total.inc()

    def record_letter_resent(self, task: str) -> None:
        """One ledgered dead letter whose record message was lost, published again by the sweep."""
        self.deadletters_resent_total.labels(task).inc()

    def record_outbox_publish(self, status: str, lag_s: float | None) -> None:
        """One relay publish (`ok` with its commit->publish lag, or `error`)."""
        self.outbox_publishes_total.labels(status).inc()
        if lag_s is not None:
            self.outbox_publish_lag_seconds.observe(lag_s)

    def set_outbox_backlog(self, pending: int, oldest_age_s: float) -> None:
        """The outbox as a relay last counted it: rows waiting and the oldest one's age."""
        self.outbox_pending_jobs.set(pending)
        self.outbox_oldest_pending_age_seconds.set(oldest_age_s)

    def record_requeue(self, kind: str, queue: str) -> None:
        """One job whose message the broker lost, published again by the sweep."""
        self.jobs_requeued_total.labels(kind, queue).inc()

    def set_queue_depths(
        self,
        depths: dict[str, int],
        in_flight: dict[str, int] | None = None,
        *,
        at: float | None = None,
        host: str = "",
    ) -> None:
        """Latest broker sample: messages waiting (and taken but unacked) per queue, read by `host` at `at`."""
        for queue, n in depths.items():
            self.queue_depth.labels(queue).set(n)
            if queue == "assessments":
                self.assessments_queue_depth.set(n)
        for queue, n in (in_flight or {}).items():
            self.queue_in_flight.labels(queue).set(n)
        if at is not None:
            self.queue_depth_sampled_at.labels(host).set(at)

    def blank_queue_depths(self) -> None:
        """The broker read failed: every depth series becomes NaN, so a stale number is never served as fresh
        (a NaN compares false, so no depth alert fires on it; the sample timestamp keeps its last good value)."""
        nan = float("nan")
        for gauge in (self.queue_depth, self.queue_in_flight):
            for (queue,) in list(gauge._metrics):  # the label sets already exported
                gauge.labels(queue).set(nan)
        self.assessments_queue_depth.set(nan)

    def heartbeat(self, host: str, *, broker_connected: bool, at: float) -> None:
        """The worker main process is alive at `at`; its last broker round trip succeeded or not."""
        self.worker_heartbeat.labels(host).set(at)
        self.worker_broker_connected.labels(host).set(1 if broker_connected else 0)

    def record_sweep(self, at: float, host: str) -> None:
        """The scheduler's sweep finished without error at unix time `at`, on worker `host`."""
        self.scheduler_last_sweep.labels(host).set(at)
