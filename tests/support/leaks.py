"""The redaction scan: recognisable raw values must appear in no log line, metric label or task message.

Reusable by every scenario (ingest/assess here; the speech branch adds STT/TTS): collect texts from each
source with a name, then `LeakScanner(needles).scan(...)` returns every hit as `(source, needle, excerpt)`.
`BrokerTap` records every message published to one Redis database (API publishes and worker retries alike)
through `MONITOR`, and `message_texts` decodes a kombu Redis message (headers, properties, base64 body).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterable

__all__ = ["LeakScanner", "BrokerTap", "message_texts"]


class LeakScanner:
    def __init__(self, needles: Iterable[str]) -> None:
        self.needles = [n for n in needles if n]
        self.scanned: dict[str, int] = {}

    def scan(self, source: str, texts: Iterable[str]) -> list[tuple[str, str, str]]:
        hits = []
        count = 0
        for text in texts:
            count += 1
            lowered = text.lower()
            for needle in self.needles:
                at = lowered.find(needle.lower())
                if at >= 0:
                    hits.append((source, needle, text[max(0, at - 80) : at + 80]))
        self.scanned[source] = self.scanned.get(source, 0) + count
        return hits


def message_texts(raw: str) -> list[str]:
    """A kombu Redis message as texts: the whole envelope plus its decoded body."""
    texts = [raw]
    try:
        envelope = json.loads(raw)
    except ValueError:
        return texts
    body = envelope.get("body") if isinstance(envelope, dict) else None
    if isinstance(body, str):
        try:
            texts.append(base64.b64decode(body).decode("utf-8", "replace"))
        except (ValueError, TypeError):
            texts.append(body)
    return texts


class BrokerTap:
    """Records every LPUSH/RPUSH payload sent to Redis database `db` while open (a context manager)."""

    def __init__(self, host: str, port: int, db: int) -> None:
        import redis

        self._client = redis.Redis(host=host, port=port)
        self._db = db
        self.messages: list[str] = []
        self._thread: threading.Thread | None = None
        self._monitor = None
        self._ready = threading.Event()

    def _run(self) -> None:
        try:
            with self._client.monitor() as monitor:
                self._monitor = monitor
                self._ready.set()
                for item in monitor.listen():
                    if int(item.get("db", -1)) != self._db:
                        continue
                    command = item.get("command", "")
                    if command.upper().startswith(("LPUSH", "RPUSH")):
                        self.messages.append(command)
        except Exception:  # the connection was closed by `__exit__`
            self._ready.set()

    def __enter__(self) -> BrokerTap:
        self._thread = threading.Thread(target=self._run, name="broker-tap", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        if self._monitor is not None:
            self._monitor.connection.disconnect()
        if self._thread is not None:
            self._thread.join(5)
        self._client.close()

    def texts(self) -> list[str]:
        out = []
        for command in self.messages:
            out.append(command)
            start = command.find("{")
            if start >= 0:
                payload = command[start:].rstrip('"').encode().decode("unicode_escape", "replace")
                out.extend(message_texts(payload))
        return out
