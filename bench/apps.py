"""The two Celery apps the overhead benchmark compares, built on first attribute access from the environment.

- `bare`: Celery configured with exactly the project's `celeryconfig` (same broker, acks, prefetch, queues),
  no signal receivers, no metrics, no JSON logs.
- `instrumented`: `workers.create_celery()`: the real app, with `workers.signals` wired (logs, metrics,
  metrics endpoint, queue-depth sampler).

Both register the same no-op task, `bench.noop` (on the instrumented app with the project's task base,
`workers.base.CoachupTask`), and `bench.stamp`, which returns the wall-clock ms at which it started (the
latency benchmark reads it with the result's `date_done`), both routed to the `assessments` queue.
"""

from __future__ import annotations

__all__ = ["build", "NOOP", "STAMP"]

NOOP = "bench.noop"
STAMP = "bench.stamp"
_apps: dict = {}


def _noop() -> None:
    return None


def _stamp() -> int:
    import time

    return int(time.time() * 1000)


def build(variant: str):
    """The `bare` or `instrumented` app (cached per process)."""
    if variant in _apps:
        return _apps[variant]
    from celery import Celery

    import celeryconfig
    from coachup.settings import load_settings

    settings = load_settings()
    options: dict = {}
    if variant == "bare":
        app = Celery("bench", set_as_current=False)
        app.conf.update(celeryconfig.celery_config(settings))
    elif variant == "instrumented":
        from workers import create_celery
        from workers.base import CoachupTask

        app = create_celery(settings)
        options["base"] = CoachupTask
    else:
        raise ValueError(f"unknown variant {variant!r}")
    app.task(name=NOOP, shared=False, **options)(_noop)
    app.task(name=STAMP, shared=False, **options)(_stamp)
    _apps[variant] = app
    return app


def __getattr__(name: str):
    if name in ("bare", "instrumented"):
        return build(name)
    raise AttributeError(name)
