"""The one door for identifiers and free text on their way to logs, metrics, headers and dead letters.

Identifiers become keyed hashes (HMAC-SHA256 with `COACHUP_HASH_SECRET`), prefixed by kind as in the
reference (`u:`, `s:`, `ts:`, `g:`). Free-form messages (exception text) are scrubbed of credentials in
URLs, bearer tokens and API keys, and truncated.
"""

from __future__ import annotations

import hashlib
import hmac
import re

__all__ = ["Hasher", "scrub", "HASH_PREFIXES"]

HASH_PREFIXES = {"user": "u:", "session": "s:", "tracked_skill": "ts:", "group": "g:", "object": "o:"}
_HASH_HEX_CHARS = 16  # 64 bits: collision-free at our scale, short enough to read in a log line

# the user may be empty (`redis://:password@host`, the usual Redis form): still credentials
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]*(:[^/\s@]*)?@")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_API_KEY = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_-]{8,}")
_SECRET_KV = re.compile(r"(?i)\b(password|passwd|secret|token|api[_-]?key|authorization)\s*[=:]\s*\S+")


class Hasher:
    """Keyed hashing of identifiers. Deterministic for one secret, so the same id joins across hops."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode("utf-8")
        # the keyed inner/outer state is computed once; each digest copies it (about half the cost of hmac.new)
        self._keyed = hmac.new(self._key, digestmod=hashlib.sha256)

    def digest(self, value: str) -> str:
        """Hex HMAC-SHA256 of `value`, shortened to 16 hex chars."""
        mac = self._keyed.copy()
        mac.update(value.encode("utf-8"))
        return mac.hexdigest()[:_HASH_HEX_CHARS]

    def hash(self, kind: str, value: str | None) -> str | None:
        """`value` as `<prefix><digest>` (e.g. `s:91b2…`); `None` stays `None`."""
        if value is None or value == "":
            return None
        return HASH_PREFIXES[kind] + self.digest(value)

    def session(self, value: str | None) -> str | None:
        return self.hash("session", value)

    def group(self, value: str | None) -> str | None:
        return self.hash("group", value)


def scrub(message: object, *, limit: int = 300) -> str:
    """`message` as text with credentials removed and length capped; safe for a log line or a dead letter."""
    text = str(message)
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    text = _BEARER.sub(r"\1 ***", text)
    text = _API_KEY.sub("***", text)
    text = _SECRET_KV.sub(r"\1=***", text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
