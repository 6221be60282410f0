"""Celery adapter over `coachup`. `celery -A workers worker -Q assessments` finds `workers.app`.

The app is built on first attribute access (not at import), from the environment.
"""

from __future__ import annotations

from .app import create_celery

__all__ = ["create_celery", "app", "get_app"]

_app = None


def get_app():
    global _app
    if _app is None:
        _app = create_celery()
    return _app


def __getattr__(name: str):
    if name in ("app", "celery"):
        return get_app()
    raise AttributeError(name)
