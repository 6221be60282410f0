"""Flask adapter over `coachup`: thin views that validate, hash ids, enqueue and read results."""

from .app import create_app

__all__ = ["create_app"]
