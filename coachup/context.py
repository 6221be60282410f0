"""Request context: the ids that follow one request through the API, the task headers and the worker.

Only safe values live here: a safe opaque request id (the caller's, e.g. the front end's short base36
ids, or a generated UUIDv4), a validated `traceparent`, and keyed hashes of the user/session/tracked-skill/
group ids. `to_headers` / `from_headers` carry it across a task message.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property

__all__ = ["RequestContext", "current", "use", "new_request_id", "valid_request_id", "valid_traceparent"]

# a request id is opaque: letters, digits and `._:-`, at most 64 (the job table's column), starting with a
# letter or digit. Nothing else is echoed, logged or sent on: no spaces, quotes, slashes or control characters.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
MAX_REQUEST_ID_CHARS = 64
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")


def new_request_id() -> str:
    return str(uuid.uuid4())


def valid_request_id(value: str | None) -> bool:
    """True for a safe opaque id (a UUID, a base36 id, ...); anything else is replaced by a new UUIDv4."""
    return isinstance(value, str) and bool(_SAFE_REQUEST_ID.match(value))


def valid_traceparent(value: str | None) -> bool:
    return bool(value) and bool(_TRACEPARENT.match(value or ""))


def safe_token(value: str | None) -> str | None:
    """A short label such as a provider or model id, or None when it is not one."""
    return value if value and _SAFE_TOKEN.match(value) else None


@dataclass(frozen=True)
class RequestContext:
    """Safe per-request values; field names are the log field names."""

    requestId: str
    traceparent: str | None = None
    userIdHash: str | None = None
    sessionIdHash: str | None = None
    trackedSkillIdHash: str | None = None
    groupId: str | None = None  # already hashed (g:…)
    provider: str | None = None
    modelId: str | None = None
    taskId: str | None = None  # the job a worker is running (bound by the task observer); never a header

    def with_(self, **changes) -> RequestContext:
        return replace(self, **changes)

    @cached_property
    def _set_fields(self) -> dict:
        # every field is a flat string, so a plain read beats `asdict`'s deep copy on this per-log-line path
        return {k: v for k in self.__dataclass_fields__ if (v := getattr(self, k)) is not None}

    def log_fields(self) -> dict:
        return dict(self._set_fields)

    def to_headers(self) -> dict[str, str]:
        """Task message headers (every value already safe to show in Flower or a dead letter). A job's own
        task id is its message's id already: a job published from inside another must not inherit it."""
        return {k: v for k, v in self._set_fields.items() if k != "taskId"}

    @classmethod
    def from_headers(cls, headers: Mapping[str, object] | None) -> RequestContext:
        headers = headers or {}
        rid = headers.get("requestId")
        values: dict[str, str | None] = {}
        for k in cls.__dataclass_fields__:
            v = headers.get(k)
            if k not in ("requestId", "taskId"):
                values[k] = v if isinstance(v, str) else None
        return cls(requestId=rid if isinstance(rid, str) and valid_request_id(rid) else new_request_id(), **values)


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("coachup_ctx", default=None)


def current() -> RequestContext | None:
    return _current.get()


@contextmanager
def use(ctx: RequestContext | None) -> Iterator[RequestContext | None]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def bind(ctx: RequestContext | None) -> contextvars.Token:
    """Set the context without a `with` block (Flask before/after hooks); pass the token to `unbind`."""
    return _current.set(ctx)


def unbind(token: contextvars.Token) -> None:
    _current.reset(token)
