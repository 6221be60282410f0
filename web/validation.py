"""Request parsing: typed fields with clear 400s. Views call these instead of touching `request` JSON."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal, overload

from flask import request

from .errors import ApiError
from .input_guard import check_text, parsed_json

__all__ = [
    "json_body",
    "merged_params",
    "req_id_field",
    "opt_id_field",
    "opt_str",
    "opt_bool",
    "opt_ts",
    "ID_PATTERN",
    "opt_str_list",
    "opt_int",
]

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}\Z")  # \Z: `$` would let a trailing newline in


def _invalid(message: str) -> ApiError:
    return ApiError(400, "validation_error", message)


def json_body(*, required: bool = True) -> dict:
    """The JSON object body; 400 for malformed JSON or a non-object, 415 for another content type."""
    if not request.content_length and not request.data:
        if required:
            raise _invalid("a JSON object body is required")
        return {}
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send application/json")
    data = parsed_json()  # the input guard's parse: bounded depth, no NUL or unpaired surrogate
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def merged_params() -> dict:
    """JSON object, form fields and query string, in that order of precedence."""
    params: dict[str, Any] = dict(request.args.items())
    if request.form:
        params.update(request.form.items())
    if request.is_json:
        params.update(json_body(required=False))
    elif request.data and not request.form:
        raise ApiError(415, "unsupported_media_type", "send application/json or a form")
    return params


def req_id_field(data: dict, name: str) -> str:
    value = data.get(name)
    if value is None or value == "":
        raise _invalid(f"{name} is required")
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise _invalid(f"{name} must be a string of 1-200 letters, digits or _.:@-")
    return value


def opt_id_field(data: dict, name: str) -> str | None:
    return None if data.get(name) in (None, "") else req_id_field(data, name)


@overload
def opt_str(data: dict, name: str, *, max_len: int, required: Literal[True], choices=None) -> str: ...
@overload
def opt_str(data: dict, name: str, *, max_len: int, required: bool = False, choices=None) -> str | None: ...
def opt_str(data: dict, name: str, *, max_len: int, required: bool = False, choices=None) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise _invalid(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string")
    check_text(value, name)  # form fields reach here without the JSON guard's walk
    if required and not value.strip():
        raise _invalid(f"{name} must not be empty")
    if len(value) > max_len:
        raise _invalid(f"{name} is longer than {max_len} characters")
    if choices is not None and value not in choices:
        raise _invalid(f"{name} must be one of {', '.join(choices)}")
    return value


def opt_bool(data: dict, name: str) -> bool:
    value = data.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "false", "0", ""):
        return value.lower() in ("true", "1")
    raise _invalid(f"{name} must be a boolean")


def opt_int(data: dict, name: str, *, default: int, lo: int, hi: int) -> int:
    value = data.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise _invalid(f"{name} must be an integer") from None
    if isinstance(value, bool) or not lo <= number <= hi:
        raise _invalid(f"{name} must be between {lo} and {hi}")
    return number


def opt_ts(data: dict, name: str) -> datetime | None:
    """ISO 8601 text or epoch milliseconds; naive times are UTC."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise _invalid(f"{name} must be an ISO 8601 time or epoch milliseconds")
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, ValueError, OSError):
            raise _invalid(f"{name} is out of range") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _invalid(f"{name} must be an ISO 8601 time or epoch milliseconds") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise _invalid(f"{name} must be an ISO 8601 time or epoch milliseconds")


def opt_str_list(data: dict, name: str, *, max_items: int, max_len: int = 64) -> list[str] | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or len(value) > max_items:
        raise _invalid(f"{name} must be a list of at most {max_items} ids")
    out = []
    for item in value:
        if isinstance(item, dict):  # the front end sends tracked skill objects: {skillId, ...}
            item = item.get("skillId") or item.get("id")
        if not isinstance(item, str) or not item or len(item) > max_len or not ID_PATTERN.match(item):
            raise _invalid(f"{name} entries must be skill ids")
        out.append(item)
    return out
