"""The scheduler's pulse: `coachup beat` touches a file each time it publishes a tick, and `coachup probe beat`
(the Kubernetes readiness and liveness probe of the beat pod) fails when that file is older than a few ticks.

Beat has no HTTP endpoint; a file under the data dir is the cheapest honest signal that the process is
alive *and* its publishes reach the broker (`after_task_publish` fires only after the broker took the
message). The metric side of the same question is `coachup_scheduler_last_sweep_timestamp_seconds`.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["pulse_path", "install_pulse", "pulse_age_s", "max_pulse_age_s"]


def pulse_path(settings) -> Path:
    """`<data dir>/beat/pulse`: touched on every tick beat publishes."""
    return (settings.data_dir / "beat" / "pulse").resolve()


def max_pulse_age_s(settings) -> float:
    """Three sweep intervals plus a margin: one missed tick is not an outage."""
    return 3.0 * settings.idle_sweep_s + 15.0


_pulse: dict[str, Path] = {}  # the file this process touches (set by `install_pulse`)


def _touch(**_kwargs) -> None:
    """`after_task_publish` receiver: the broker took a message from this process."""
    path = _pulse.get("path")
    if path is None:
        return
    try:
        path.touch()
    except OSError:  # an observer never breaks the scheduler; the probe will say so
        pass


def install_pulse(settings) -> None:
    """Touch the pulse file after each publish of this (beat) process (idempotent: one receiver)."""
    from celery.signals import after_task_publish

    path = pulse_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    _pulse["path"] = path
    after_task_publish.connect(_touch, weak=False, dispatch_uid="coachup.beat.pulse")
    path.touch()  # started: the first tick follows within one interval


def pulse_age_s(settings, now: float | None = None) -> float | None:
    """Seconds since beat last published, or None when it never did (no pulse file)."""
    try:
        mtime = pulse_path(settings).stat().st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - mtime
