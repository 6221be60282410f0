"""What a chat request carries, decoded and bounded: base64url JSON parameters and `[{role, content}]` lists.

The front end sends `history`, `userProfile` and `userGoals` as base64url (no padding) JSON in the query string.
Everything here raises `ValidationFailed` with a message that names the parameter, never echoing its value.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from coachup.errors import ValidationFailed

__all__ = ["Message", "ChatInputs", "decode_b64url_json", "parse_messages", "LIMITS"]

ROLES = ("user", "assistant", "system")
# Bounds of one request (characters). The front end sends at most ~10 turns of <= 240 chars plus a summary;
# these leave room for the chat page's untruncated turns while keeping one prompt far below a model's window.
LIMITS = {
    "prompt": 4000,
    "systemPrompt": 4000,
    "history": 48_000,  # encoded length
    "userProfile": 8000,
    "userGoals": 8000,
    "message": 8000,
    "messages": 50,
}


@dataclass(frozen=True)
class Message:
    role: str  # user | assistant | system
    content: str


@dataclass(frozen=True)
class ChatInputs:
    """One chat turn's inputs. `prompt` is the user's new message (may come from the last history item)."""

    prompt: str
    history: tuple[Message, ...] = ()
    system_prompt: str | None = None
    user_profile: dict[str, Any] | None = None
    user_goals: list[Any] = field(default_factory=list)
    summary: str | None = None  # the session's stored rolling summary, when the history carries none


def decode_b64url_json(raw: str | None, name: str) -> Any:
    """The JSON value of base64url text `raw` (padding optional); None when absent or empty."""
    if raw is None or raw == "":
        return None
    if len(raw) > LIMITS.get(name, 8000) * 4 // 3 + 4:
        raise ValidationFailed(f"{name} is too large (at most {LIMITS.get(name, 8000)} characters of JSON)")
    text = raw.strip()
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(f"{name} is not valid base64url") from None
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValidationFailed(f"{name} is not base64url-encoded UTF-8 JSON") from None


def parse_messages(value: Any, name: str, *, max_items: int = LIMITS["messages"]) -> tuple[Message, ...]:
    """`[{role, content}]` as Messages; empty contents are dropped, anything else malformed is refused."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValidationFailed(f"{name} must be a JSON array of {{role, content}}")
    if len(value) > max_items:
        raise ValidationFailed(f"{name} has more than {max_items} messages")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ValidationFailed(f"{name}[{i}] must be an object {{role, content}}")
        role, content = item.get("role"), item.get("content")
        if role not in ROLES:
            raise ValidationFailed(f"{name}[{i}].role must be one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ValidationFailed(f"{name}[{i}].content must be a string")
        if len(content) > LIMITS["message"]:
            raise ValidationFailed(f"{name}[{i}].content is longer than {LIMITS['message']} characters")
        if content.strip():
            out.append(Message(role, content))
    return tuple(out)


def bounded_text(value: str | None, name: str) -> str | None:
    """A free-text parameter within its limit; None when absent or blank."""
    if value is None or not value.strip():
        return None
    if len(value) > LIMITS[name]:
        raise ValidationFailed(f"{name} is longer than {LIMITS[name]} characters")
    return value
