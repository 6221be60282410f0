"""The one input-normalisation layer: every request's query string, path parameters and JSON body pass here first.

Why one door: the database drivers disagree on text the HTTP layer happily delivers. PostgreSQL refuses a NUL
(psycopg raises before the statement is sent) and neither driver can encode an unpaired surrogate (a JSON
`"\\ud800"` decodes to one), so the same request used to be a 201 on SQLite and a 500 on PostgreSQL. A JSON body
nested deeper than Python's recursion limit raised RecursionError inside the parser (a 2 KB body was enough).
The rule, stated once and identical on both databases: such text is *rejected* with a 400 `invalid_text` naming
the field (never silently altered, so what is stored is what the client sent), and a JSON body nested deeper
than `MAX_JSON_DEPTH` is a 400 `invalid_json`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, g, request

from .errors import ApiError

__all__ = ["MAX_JSON_DEPTH", "install_input_guard", "parsed_json", "bad_text_reason", "check_text"]

# deepest JSON nesting any route accepts: the deepest documented body (a transcript's turn inside `transcript`,
# or a tracked skill object inside `trackedSkills`) is 3; 32 leaves room for clients that wrap, and stays far
# below the parser's recursion limit (~1,000)
MAX_JSON_DEPTH = 32
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
_NO_BODY = object()


def bad_text_reason(value: str) -> str | None:
    """Why `value` cannot be stored (a NUL or an unpaired surrogate), or None when it is fine."""
    found = _BAD_CHARS.search(value)
    if found is None:
        return None
    return "a NUL character" if found.group() == "\x00" else "an unpaired UTF-16 surrogate"


def check_text(value: str, where: str) -> None:
    """400 `invalid_text` when `value` holds a character no store accepts."""
    reason = bad_text_reason(value)
    if reason is not None:
        raise ApiError(400, "invalid_text", f"{where} contains {reason}, which is not accepted")


def _loads(text: str) -> Any:
    """json.loads; a body nested past the parser's recursion limit is refused like any other bad JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


def _walk(value: Any) -> None:
    """Every string (keys included) of a parsed body checked, and its depth bounded; iterative, so a deep body
    costs this walk nothing more than a flat one."""
    stack: list[tuple[Any, str, int]] = [(value, "body", 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, where)
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth >= MAX_JSON_DEPTH:
            raise ApiError(400, "invalid_json", f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key, inner in item.items():
                check_text(key, f"a key of {where}")
                stack.append((inner, f"{where}.{key[:64]}", depth + 1))
        else:
            stack.extend((inner, f"{where}[{i}]", depth + 1) for i, inner in enumerate(item))


def parsed_json() -> Any:
    """The request's JSON body, parsed once under the guard's rules; None when the request has no body."""
    cached = getattr(g, "_guarded_json", _NO_BODY)
    if cached is not _NO_BODY:
        return cached
    raw = request.get_data(cache=True)
    if not raw:
        g._guarded_json = None
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "the body is not UTF-8 JSON") from None
    data = _loads(text)
    _walk(data)
    g._guarded_json = data
    return data


def _check_request() -> None:
    for key, value in request.args.items(multi=True):
        check_text(key, "a query parameter name")
        check_text(value, f"query parameter {key}")
    for key, value in (request.view_args or {}).items():
        if isinstance(value, str):
            check_text(value, f"path parameter {key}")
    if request.is_json and request.method in ("POST", "PUT", "PATCH", "DELETE"):
        parsed_json()


def install_input_guard(app: Flask) -> None:
    """Register the guard as a before-request hook (after request context and auth, so refusals are logged)."""
    app.before_request(_check_request)
