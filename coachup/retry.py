"""Backoff arithmetic for retries (pure; Celery's autoretry calls it through the task base class).

Celery's own `retry_backoff` works in whole seconds; the product wants 200, 400, 800 ms, so the countdown
is computed here in milliseconds and handed to `Task.retry(countdown=...)` as a float.
"""

from __future__ import annotations

import random

__all__ = ["backoff_ms", "JITTER_FRACTION"]

JITTER_FRACTION = 0.25  # upward jitter keeps successive gaps strictly growing: [200,250], [400,500], ...


def backoff_ms(retries_done: int, base_ms: int, cap_ms: int, *, rng: random.Random | None = None) -> int:
    """Delay before retry number `retries_done + 1`: base·2^k plus up to 25% jitter, never above `cap_ms`."""
    nominal = base_ms * (2 ** max(0, retries_done))
    jitter = (rng or random).random() * JITTER_FRACTION * nominal
    return int(min(cap_ms, nominal + jitter))
