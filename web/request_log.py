"""What the one request log line may say about a request's parameters: a whitelist per canonical route.

The whitelists come from the reference's route notes; a route without an entry logs no `params`. Values
are taken from the query string (scalars only) and from `g.log_params`, which a view fills with derived,
safe values (hashes, booleans such as `cursorPresent`). Raw ids and free text never qualify.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["PARAM_WHITELIST", "whitelisted_params"]

PARAM_WHITELIST: dict[str, tuple[str, ...]] = {
    "GET /api/v1/skills": ("id", "category"),
    "POST /api/v1/storage/audio/presign": ("contentType", "contentLength"),
    "GET /api/v1/transcripts": ("sessionIdHash", "groupId", "limit", "cursorPresent"),
    "POST /api/v1/stt": ("source", "language"),
    "POST /api/v1/tts": ("format", "voiceId", "uploaded"),
    "GET /assessments/{session_id}": ("groupIdPresent",),
    "POST /assessments/run": ("transcriptTurns", "trackedSkillsCount"),
}
_MAX_VALUE_CHARS = 64
# query-string keys that are never identifiers of a user or session, so their raw value may be logged;
# every other whitelisted key must come from the view's derived (hashed) values
_QUERY_SAFE = frozenset({"id", "category", "limit", "contentType", "contentLength"})


def _scalar(value) -> bool:
    return isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= _MAX_VALUE_CHARS)


def whitelisted_params(route: str, query: Mapping[str, str], derived: Mapping[str, object]) -> dict | None:
    """The `params` object for `route`, or None when nothing is whitelisted or present."""
    allowed = PARAM_WHITELIST.get(route)
    if not allowed:
        return None
    params = {}
    for key in allowed:
        if key in derived and _scalar(derived[key]):
            params[key] = derived[key]
        elif key in _QUERY_SAFE and key in query and _scalar(query[key]):
            params[key] = query[key]
    return params or None
