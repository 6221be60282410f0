"""A local stand-in for the front end's finalize route, checking exactly what the real one checks.

`ui/src/app/api/assessments/convex/finalize/route.ts` (Antonio7098/coach-up-frontend), in its order:
401 `Unauthorized` unless `authorization` (trimmed) is `Bearer <PERSIST_ASSESSMENTS_SECRET>` when a secret is
set; 400 for invalid JSON; 400 unless sessionId, groupId and summary are present, sessionId and groupId
non-empty strings, `rubricVersion === 'v2'`, summary an object, `summary.skillAssessments` a non-empty array
whose every item is an object with a non-empty string `skillHash`, `Number(level)` finite in 0..10, and
`metCriteria`, `unmetCriteria`, `feedback` arrays of strings. Then its Convex step resolves each skillHash
against the catalogue as `sha256(skill.id + SKILL_HASH_SALT)` and throws for an unknown one, which the
route answers 502 (`Finalize v2 failed`); a (sessionId, groupId) already finalized answers 200 with
`idempotent: true`.

Tests can also make it answer like a front end in trouble: `outage(session_id, [503, 503])` answers those
statuses first, `stall(session_id, seconds)` holds the first request longer than the caller's timeout.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def js_number(value) -> float:
    """JavaScript's `Number(value)` for the JSON values a payload can hold."""
    if value is None or value is False:
        return 0.0
    if value is True:
        return 1.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        try:
            return float(text)
        except ValueError:
            return math.nan
    if isinstance(value, list) and len(value) <= 1:
        return js_number(value[0]) if value else 0.0
    return math.nan


def js_truthy(value) -> bool:
    """JavaScript truthiness of a JSON value (`{}` and `[]` are truthy there, falsy in Python)."""
    if isinstance(value, (dict, list)):
        return True
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(value)


def check_payload(payload) -> str | None:
    """The route's validation of a parsed body: None when it passes, else the route's error text."""
    if not isinstance(payload, dict) or not all(js_truthy(payload.get(k)) for k in ("sessionId", "groupId", "summary")):
        return "sessionId, groupId, and summary are required"

    def non_empty(v):
        return isinstance(v, str) and v.strip() != ""

    if not non_empty(payload["sessionId"]):
        return "sessionId must be a non-empty string"
    if not non_empty(payload["groupId"]):
        return "groupId must be a non-empty string"
    if payload.get("rubricVersion") != "v2":
        return "rubricVersion must be 'v2'"
    summary = payload["summary"]
    if not isinstance(summary, dict):
        return "summary must be an object"
    items = summary.get("skillAssessments")
    if not isinstance(items, list) or not items:
        return "summary.skillAssessments must be a non-empty array"
    for idx, item in enumerate(items):
        if not isinstance(item, dict):
            return f"skillAssessments[{idx}]: must be object"
        if not non_empty(item.get("skillHash")):
            return f"skillAssessments[{idx}]: skillHash must be non-empty string"
        level = js_number(item.get("level"))
        if not math.isfinite(level) or level < 0 or level > 10:
            return f"skillAssessments[{idx}]: level must be a number between 0 and 10"
        for key in ("metCriteria", "unmetCriteria", "feedback"):
            value = item.get(key)
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                return f"skillAssessments[{idx}]: {key} must be string[]"
    return None


class FinalizeRoute:
    """The route on a free loopback port; `accepted` holds every payload it took, by session id."""

    def __init__(self, *, secret: str, salt: str, skill_ids) -> None:
        self.secret, self.salt = secret, salt
        self.skill_ids = set(skill_ids)
        self.accepted: dict[str, list[dict]] = {}
        self.answers: dict[str, list[int]] = {}  # session id -> statuses answered, in order
        self.requests: dict[str, list[dict]] = {}  # session id -> headers of every request
        self._outages: dict[str, list[int]] = {}
        self._stalls: dict[str, float] = {}
        self._finalized: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        route = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                status, body = route._handle(self)
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json; charset=utf-8")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the caller gave up (its timeout)
                    pass

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/api/assessments/convex/finalize"

    def outage(self, session_id: str, statuses: list[int]) -> None:
        self._outages[session_id] = list(statuses)

    def stall(self, session_id: str, seconds: float) -> None:
        self._stalls[session_id] = seconds

    def hash_of(self, skill_id: str) -> str:
        return hashlib.sha256((skill_id + self.salt).encode()).hexdigest()

    def resolve(self, skill_hash: str) -> str | None:
        """Convex's `skills:resolveSkillIdFromHash` over this route's catalogue."""
        return next((s for s in self.skill_ids if self.hash_of(s) == skill_hash), None)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, req) -> tuple[int, dict]:
        raw = req.rfile.read(int(req.headers.get("content-length") or 0))
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        session_id = payload.get("sessionId") if isinstance(payload, dict) else None
        status, body = self._answer(req, payload, session_id)
        with self._lock:
            self.answers.setdefault(str(session_id), []).append(status)
            self.requests.setdefault(str(session_id), []).append(dict(req.headers))
        return status, body

    def _answer(self, req, payload, session_id) -> tuple[int, dict]:
        with self._lock:
            stall = self._stalls.pop(session_id, None) if session_id else None
            forced = self._outages.get(session_id, []) if session_id else []
            status = forced.pop(0) if forced else None
        if stall:
            time.sleep(stall)
            return 504, {"error": "stalled"}
        if status is not None:
            return status, {"error": "front end unavailable"}
        if self.secret and (req.headers.get("authorization") or "").strip() != f"Bearer {self.secret}":
            return 401, {"error": "Unauthorized"}
        if payload is None:
            return 400, {"error": "Invalid JSON"}
        error = check_payload(payload)
        if error:
            return 400, {"error": error}
        key = (payload["sessionId"], payload["groupId"])
        with self._lock:
            if key in self._finalized:
                return 200, {"status": "ok", "processed": 0, "idempotent": True}
        items = payload["summary"]["skillAssessments"]
        if any(self.resolve(i["skillHash"]) is None for i in items):
            return 502, {"error": "Finalize v2 failed", "detail": "Error: skillHash not found"}
        with self._lock:
            self._finalized.add(key)
            self.accepted.setdefault(payload["sessionId"], []).append(payload)
        return 200, {"status": "ok", "processed": len(items), "idempotent": False}
