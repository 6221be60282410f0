"""`idempotency.expire`: the scheduler's sweep that deletes `Idempotency-Key` rows past their TTL
(`COACHUP_IDEMPOTENCY_TTL_S`, `coachup.store.idempotency.expire_keys`)."""

from __future__ import annotations

import logging

from coachup.logs import log_event
from coachup.store.idempotency import expire_keys

from ..base import task_options

__all__ = ["register"]

log = logging.getLogger("coachup.worker")


def register(app) -> None:
    # one bounded pass (at most 1,000 keys): a stuck store must not hold a child; the next tick goes on
    @app.task(**task_options(app, "idempotency.expire", ignore_result=True, soft_time_limit=20, time_limit=30))
    def expire_idempotency_keys(self) -> dict:
        """Delete the idempotency keys older than the TTL."""
        rt = self.runtime
        deleted = expire_keys(rt.store, rt.settings.idempotency_ttl_s)
        if deleted:
            log_event(log, "idempotency_keys_expired", deleted=deleted, ttlS=rt.settings.idempotency_ttl_s)
        return {"expired": deleted}
