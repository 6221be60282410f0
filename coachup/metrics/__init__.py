"""Metrics: every family declared once (`families`), multiprocess plumbing (`multiproc`), broker queue depth
(`queue_depth`), and a JSON view for humans (`as_json`).

The integrator-facing calls are methods of `Metrics`: `observe_sqs_call(op, seconds, ok)`,
`observe_provider_call(...)`, `observe_audio(...)`, `observe_upload(...)`, `record_deadletter(task, reason)`,
`observe_http(...)`, `set_queue_depths(...)`.
"""

from __future__ import annotations

from .families import SQS_OPS, TASK_STATUSES, Metrics
from .jsonview import as_json

__all__ = ["Metrics", "SQS_OPS", "TASK_STATUSES", "as_json"]
