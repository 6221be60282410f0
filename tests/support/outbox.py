"""Waiting on the outbox relay: a committed job row is published right after the request answers, not before."""

from __future__ import annotations

from coachup.store import outbox

from .wait import wait_until


def wait_published(store, *, timeout: float = 10) -> None:
    """Every committed job row of `store` has been published (the relay thread ran after the request)."""
    wait_until(lambda: outbox.backlog(store)[0] == 0, timeout=timeout, what="the outbox relay to publish every job")
