"""What the views need, built once per app: settings, store, Celery app (for publishing), hasher."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Protocol

from flask import current_app

from coachup.redaction import Hasher
from coachup.settings import Settings
from coachup.store import Store

__all__ = ["ApiRuntime", "runtime", "role_aware", "RoleAwareCue"]


class RoleAwareCue(Protocol):
    def is_closing(self, text: str, *, role: str) -> bool:
        """True when `text`, said by `role` (user | assistant | system), ends the interaction."""
        ...


@dataclass
class ApiRuntime:
    settings: Settings
    store: Store
    celery: object
    hasher: Hasher
    closing_cue: RoleAwareCue


def runtime() -> ApiRuntime:
    return current_app.extensions["coachup"]


class _TextOnlyCue:
    """Calls a classifier that takes the text only (`is_closing(text)`) through the role-aware seam."""

    def __init__(self, cue) -> None:
        self._cue = cue

    def is_closing(self, text: str, *, role: str) -> bool:
        return self._cue.is_closing(text)


def role_aware(cue: Any) -> RoleAwareCue:
    """`cue` as the ingest route calls it, `is_closing(text, role=...)` (CONTRACTS.md §2).

    The phrase classifier before the assessment branch's version takes the text only; it is wrapped, and
    a role-aware one is used as it is.
    """
    try:
        inspect.signature(cue.is_closing).bind("", role="user")
    except TypeError:
        return _TextOnlyCue(cue)
    return cue
