"""`Idempotency-Key` on the routes that start work (`POST /assessments/run`, `/api/v1/stt`, `/api/v1/tts`).

Same key, same answer, one job: the first request with a key claims it in the store (`coachup.store.idempotency`)
and its answer is kept; a retry with that key gets that answer again (header `Idempotent-Replayed: true`) without
running the view; a retry while the first still runs gets 409 `idempotency_in_progress`. The views never wait on
the broker (the outbox relay publishes the committed job row), so a broker outage still answers 202 and the key
keeps that answer. An answer of 5xx (a 503 `store_unavailable`: the transaction did not commit) means nothing was
stored, so it is not kept and the retry does the work. Keys are scoped per route and stored only as keyed hashes.
`POST /assessments/run` also derives the new group's id from the key (`key_group_id`), so a retry after a 503
stores its transcript in the same group and assesses it once.
"""

from __future__ import annotations

import functools
import re

from flask import g, request

from coachup.store.idempotency import claim_key, finish_key, forget_key

from .errors import ApiError
from .runtime import runtime

__all__ = ["idempotent", "HEADER", "key_group_id"]

HEADER = "Idempotency-Key"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}\Z")  # printable ASCII, no spaces: UUIDs and the like


def _client_key() -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _KEY.match(key):
        raise ApiError(400, "validation_error", f"{HEADER} must be 1-200 printable ASCII characters")
    return key


def key_group_id() -> str | None:
    """The group id a new inline transcript takes under this request's key (None without a key)."""
    key = getattr(g, "idempotency_key", None)
    if key is None:
        return None
    return "grp_" + runtime().hasher.digest(f"group\n{request.path}\n{key}")


def idempotent(view):
    """Wrap a JSON view answering `(body, status)` so its first answer per key is the answer for that key."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = _client_key()
        if key is None:
            return view(*args, **kwargs)
        rt = runtime()
        key_hash = "i:" + rt.hasher.digest(f"{request.method} {request.path}\n{key}")
        existing = claim_key(rt.store, key_hash)
        if existing is not None:
            if existing.state != "done" or existing.status_code is None:
                raise ApiError(
                    409, "idempotency_in_progress", f"a request with this {HEADER} is still running; retry shortly"
                )
            g.log_fields["idempotentReplay"] = True
            return existing.body, existing.status_code, {"Idempotent-Replayed": "true"}
        g.idempotency_key = key
        try:
            body, status = view(*args, **kwargs)
        except ApiError as exc:
            if exc.status >= 500:
                forget_key(rt.store, key_hash)
            else:
                finish_key(rt.store, key_hash, exc.status, {"error": {"type": exc.type, "message": exc.message}})
            raise
        except BaseException:  # 503 store_unavailable, a bug: nothing kept, the retry does the work
            forget_key(rt.store, key_hash)
            raise
        finish_key(rt.store, key_hash, status, body)
        return body, status

    return wrapper
