"""Celery settings, derived from one `coachup.settings.Settings` (Celery's own `celeryconfig` convention).

`celery_config(settings)` returns the dict that `workers.create_celery` applies. Nothing here reads the
environment or opens a connection.
"""

from __future__ import annotations

from kombu import Exchange, Queue

from coachup.settings import Settings

__all__ = ["QUEUES", "celery_config", "TASK_ROUTES"]

QUEUES = ("assessments", "stt", "tts", "summaries", "deadletter")

TASK_ROUTES = {
    "assessments.*": {"queue": "assessments"},
    "interactions.*": {"queue": "assessments"},
    "stt.*": {"queue": "stt"},
    "tts.*": {"queue": "tts"},
    "summaries.*": {"queue": "summaries"},
    "deadletter.*": {"queue": "deadletter"},
}


def _queues() -> tuple[Queue, ...]:
    return tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES)


def _broker_options(settings: Settings) -> dict:
    vt = settings.visibility_timeout_s
    kind = settings.broker_kind
    if kind == "filesystem":
        folder = str(settings.broker_dir)
        return {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "control_folder": str(settings.broker_dir / "control"),
            "store_processed": False,
            # the transport polls the folder (kombu's default: every 1 s), and a worker whose pool is full
            # waits one interval before it takes the next message: at 0.1 s a worker drained ~35 no-ops/s,
            # at 0.02 s ~170 (docs/benchmarks.md). An idle worker's polling costs ~1% of a core.
            "polling_interval": 0.02,
        }
    if kind == "redis":
        # connect timeout bounds a publish while Redis is down (the API must answer 503 within 2 s)
        return {
            "visibility_timeout": vt,
            "socket_connect_timeout": 1,
            "socket_timeout": 5,
            "health_check_interval": 10,
            "retry_on_timeout": True,
            # sweep the unacked set every ~10 s (kombu's default is ~100 s): a message orphaned by a lost
            # connection (a Redis restart mid-task) is back soon after its visibility timeout
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
        }
    if kind == "sqs":
        return {"visibility_timeout": vt, "region": "us-east-1"}
    return {"visibility_timeout": vt}


def celery_config(settings: Settings) -> dict:
    """The Celery configuration for `settings`: safe delivery first (late ack, prefetch 1, JSON only)."""
    events = settings.broker_kind != "sqs"  # SQS has no fanout: no events, no remote control
    conf = {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "broker_transport_options": _broker_options(settings),
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": settings.enqueue_timeout_s,
        "broker_pool_limit": 10,
        "task_queues": _queues(),
        "task_default_queue": "assessments",
        "task_default_exchange": "assessments",
        "task_default_routing_key": "assessments",
        "task_create_missing_queues": False,
        "task_routes": TASK_ROUTES,
        # at-least-once, never lost: ack after the task ran, requeue when the child dies, one in hand
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_track_started": True,
        "result_expires": 24 * 3600,
        "result_extended": False,  # keep task args out of the result backend
        "worker_send_task_events": events,
        "task_send_sent_event": events,
        "worker_enable_remote_control": events,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "enable_utc": True,
        "timezone": "UTC",
        "beat_schedule": {
            "close-idle-interaction-groups": {
                "task": "interactions.sweep",
                "schedule": float(settings.idle_sweep_s),
                "options": {"expires": float(settings.idle_sweep_s)},
            },
        },
        "beat_schedule_filename": str((settings.data_dir / "celerybeat-schedule").resolve()),
    }
    if settings.broker_kind == "redis":
        conf["result_backend_transport_options"] = {"visibility_timeout": settings.visibility_timeout_s}
        conf["redis_socket_connect_timeout"] = 1
        conf["redis_socket_timeout"] = 5
    if settings.broker_kind == "filesystem":
        # kombu's filesystem transport with atomic publish and take (a consumer never reads a half-written file)
        conf["broker_transport"] = "workers.embedded:Transport"
    if settings.broker_kind == "sqs":
        from workers.sqs_options import celery_overrides

        conf.update(celery_overrides(settings))
    if settings.result_backend.startswith("db+"):
        conf["database_engine_options"] = {"pool_pre_ping": True}
        conf["database_create_tables_at_setup"] = True
    return conf
