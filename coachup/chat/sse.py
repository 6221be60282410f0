"""Server-Sent Events framing (WHATWG HTML, "Server-sent events"): what `GET /chat/stream` writes.

A reply chunk is a default (`message`) event whose text may span lines (one `data:` line each; the client
joins them with `\\n`); named events carry JSON; comments (`: ...`) keep a proxy from timing out an idle
stream and are ignored by `EventSource`. `data: [DONE]` ends a reply, so a chunk that is exactly `[DONE]`
is split in two (the front end concatenates chunks, so the text it shows is unchanged).
"""

from __future__ import annotations

import json
import re

__all__ = ["data", "event", "comment", "DONE"]

DONE = "data: [DONE]\n\n"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def data(text: str) -> str:
    """One default event carrying `text` exactly as the client will see it."""
    if text == "[DONE]":
        return data("[DON") + data("E]")
    return "".join(f"data: {line}\n" for line in _LINE_BREAK.split(text)) + "\n"


def event(name: str, payload: dict) -> str:
    """A named event with a JSON payload (one line: JSON escapes its own line breaks)."""
    return f"event: {name}\ndata: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


def comment(text: str) -> str:
    """A comment line; `text` must not contain a line break."""
    return f": {_LINE_BREAK.sub(' ', text)}\n\n"
