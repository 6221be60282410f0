"""What the views need, built once per app: settings, store, Celery app (for publishing), hasher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from coachup.interaction import ClosingCue
from coachup.redaction import Hasher
from coachup.settings import Settings
from coachup.store import Store

__all__ = ["ApiRuntime", "runtime"]


@dataclass
class ApiRuntime:
    settings: Settings
    store: Store
    celery: Any  # the Celery app of `workers.create_celery` (its `coachup` runtime holds the broker)
    hasher: Hasher
    closing_cue: ClosingCue


def runtime() -> ApiRuntime:
    return current_app.extensions["coachup"]
