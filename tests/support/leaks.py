"""The redaction scan: recognisable raw values must appear in no log line, metric label or task message.

Reusable by every scenario (ingest/assess here; the speech branch adds STT/TTS): collect texts from each
source with a name, then `LeakScanner(needles).scan(...)` returns every hit as `(source, needle, excerpt)`.
`BrokerTap` records every message published to one Redis database (API publishes and worker retries alike)
through `MONITOR`, and `message_texts` decodes a kombu Redis message (headers, properties, base64 body).

The whole run is scanned once, after every other test (`scan_run`, called from `pytest_sessionfinish` in
tests/conftest.py): every log file and SQLite store under the run's base temp directory, plus what tests
`keep` because it would be gone by then (broker taps, PostgreSQL stores dropped at teardown, SQS DLQs).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LeakScanner", "BrokerTap", "message_texts", "RUN_NEEDLES", "keep", "store_texts", "scan_run", "RunScan"]

# raw values the tests send through the system, which must never come back out of it: session ids
# (`drill-…`), transcript texts, JWT subjects, fake provider keys, the test hash secret
RUN_NEEDLES = (
    "drill-",
    "quarterly review",
    "presented the roadmap",
    "led the migration",
    "leaky-subject-123",
    "user-under-test",
    "sk-test-not-a-real-key",
    "RAWLEAK",
    "periwinklequasar",
    "test-hash-secret-7f3a",
)
_kept: dict[str, list[str]] = {}
_kept_lock = threading.Lock()
_SQLITE_MAGIC = b"SQLite format 3\x00"
# what a store holds that a leak would reach: dead-letter records, and the failures they are built from
_STORE_QUERIES = ("SELECT * FROM dead_letters", "SELECT error_type, error_message FROM jobs")


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
        keep("broker taps", self.texts())

    def texts(self) -> list[str]:
        out = []
        for command in self.messages:
            out.append(command)
            start = command.find("{")
            if start >= 0:
                payload = command[start:].rstrip('"').encode().decode("unicode_escape", "replace")
                out.extend(message_texts(payload))
        return out


def keep(source: str, texts: Iterable[str]) -> None:
    """Hold `texts` for the final scan of the run (material that will not survive until then)."""
    with _kept_lock:
        _kept.setdefault(source, []).extend(str(t) for t in texts)


def store_texts(execute) -> list[str]:
    """The dead-letter rows and job failures of a store, each row as one text; `execute(sql)` yields rows."""
    texts = []
    for query in _STORE_QUERIES:
        try:
            texts += [json.dumps([str(v) for v in row]) for row in execute(query)]
        except Exception:  # a store without that table (not migrated, or not ours): nothing to scan
            continue
    return texts


def _sqlite_texts(path: Path) -> list[str]:
    try:
        with path.open("rb") as f:
            if f.read(16) != _SQLITE_MAGIC:
                return []
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except (OSError, sqlite3.Error):
        return []
    try:
        return store_texts(lambda q: conn.execute(q).fetchall())
    finally:
        conn.close()


@dataclass
class RunScan:
    """The result of `scan_run`: every hit, and what was covered (files, lines, rows, kept texts)."""

    hits: list[tuple[str, str, str]] = field(default_factory=list)
    log_files: int = 0
    log_lines: int = 0
    stores: int = 0
    store_rows: int = 0
    kept: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        kept = ", ".join(f"{k} {v}" for k, v in sorted(self.kept.items())) or "none"
        return (
            f"leak scan (after every test): {self.log_files} log files ({self.log_lines} lines), "
            f"{self.stores} SQLite stores ({self.store_rows} dead-letter and job rows), kept: {kept}; "
            f"{len(self.hits)} hits"
        )


def dump_kept(directory: Path, name: str) -> None:
    """Write what this process kept under `directory` (an xdist worker hands it to the controller so)."""
    with _kept_lock:
        if _kept:
            (directory / f"leak-material-{name}.json").write_text(json.dumps(_kept))


def scan_run(basetemp: Path, needles: Iterable[str] = RUN_NEEDLES) -> RunScan:
    """Scan every log file and SQLite store under `basetemp`, and everything kept, for `needles`."""
    scanner, result = LeakScanner(needles), RunScan()
    for dirpath, _dirs, files in os.walk(basetemp):
        for name in sorted(files):
            path = Path(dirpath) / name
            if name.endswith(".log"):
                lines = path.read_text(errors="replace").splitlines()
                result.hits += scanner.scan(f"log:{path.relative_to(basetemp)}", lines)
                result.log_files += 1
                result.log_lines += len(lines)
            elif name.endswith((".db", ".sqlite", ".sqlite3")):
                rows = _sqlite_texts(path)
                result.hits += scanner.scan(f"store:{path.relative_to(basetemp)}", rows)
                result.stores += 1
                result.store_rows += len(rows)
            elif name.startswith("leak-material-") and name.endswith(".json"):
                for source, texts in json.loads(path.read_text()).items():
                    result.hits += scanner.scan(source, texts)
                    result.kept[source] = result.kept.get(source, 0) + len(texts)
    with _kept_lock:
        for source, texts in _kept.items():
            result.hits += scanner.scan(source, texts)
            result.kept[source] = result.kept.get(source, 0) + len(texts)
    return result
