"""Celery settings, derived from one `coachup.settings.Settings`, the chosen broker and the job-kind registry.

`celery_config(settings, broker)` returns the dict that `workers.create_celery` applies: the common,
safe-delivery settings here, the broker's own (`workers.brokers.*.celery_options`) merged over them, and
queues and routes from `coachup.jobs`. Nothing here reads the environment or opens a connection.
"""

from __future__ import annotations

from kombu import Exchange, Queue

from coachup import jobs
from coachup.settings import Settings

__all__ = ["QUEUES", "celery_config", "TASK_ROUTES"]

QUEUES = jobs.queue_names()
TASK_ROUTES = jobs.task_routes()
_DEFAULT_QUEUE = jobs.QUEUES[0].name  # `assessments`: where an unrouted task goes


def _queues() -> tuple[Queue, ...]:
    return tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES)


def celery_config(settings: Settings, broker=None) -> dict:
    """The Celery configuration for `settings`: safe delivery first (late ack, prefetch 1, JSON only)."""
    if broker is None:
        from workers.brokers import broker_for

        broker = broker_for(settings)
    events = broker.has_events  # SQS has no fanout: no events, no remote control
    conf = {
        "broker_url": broker.url,
        "result_backend": broker.result_backend,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout_s},
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": settings.enqueue_timeout_s,
        "broker_pool_limit": 10,
        "task_queues": _queues(),
        "task_default_queue": _DEFAULT_QUEUE,
        "task_default_exchange": _DEFAULT_QUEUE,
        "task_default_routing_key": _DEFAULT_QUEUE,
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
        # task events cost the worker's main process (its bottleneck on small tasks) about half its CPU: off
        # until someone watches. Flower turns them on at run time on every worker it sees (a broadcast
        # `enable_events` at start and every 5 s; by hand: `celery -A workers control enable_events`);
        # worker events (heartbeats, online/offline) stay on, so Flower lists the workers at once
        "worker_send_task_events": False,
        # no `task-sent` either: it is a second Redis PUBLISH from every publisher (the API's outbox relay above
        # all, about 0.3 ms of its CPU per job) and Flower cannot switch it on at run time as it does the
        # workers' events; a watched job appears in Flower from `task-received`
        "task_send_sent_event": False,
        "worker_enable_remote_control": events,
        "worker_hijack_root_logger": False,
        # a message that can never run is quarantined and dead-lettered, not acked with its body in a log
        "worker_consumer": "workers.poison_consumer:PoisonAwareConsumer",
        "worker_redirect_stdouts": False,
        "enable_utc": True,
        "timezone": "UTC",
        "beat_schedule": {
            kind.name: {
                "task": kind.task,
                "schedule": float(getattr(settings, kind.schedule)),
                "options": {"expires": float(getattr(settings, kind.schedule))},  # a missed tick is not queued up
            }
            for kind in jobs.periodic_kinds()
            if kind.schedule
        },
        # only the scheduler holding the store's lease sends periodic tasks (workers/beat_lease.py)
        "beat_scheduler": "workers.beat_lease:LeasedScheduler",
        "beat_schedule_filename": str((settings.data_dir / "celerybeat-schedule").resolve()),
    }
    conf.update(broker.celery_options())
    if conf["result_backend"].startswith("db+"):
        conf["database_engine_options"] = {"pool_pre_ping": True}
        conf["database_create_tables_at_setup"] = True
    return conf
