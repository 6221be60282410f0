"""A scripted OpenAI-compatible chat server on 127.0.0.1 for worker subprocesses (stdlib only).

Every request is recorded (path, lower-cased headers, JSON body). The reply depends on a marker word found in
the prompt: `REJECTME` answers 400, `FLAKYONCE` answers 500 to the first `flaky_failures` calls, `HOLDME`
holds the first `hold_calls` calls until `release` is set; anything else gets a valid assessment.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ScriptedOpenAI", "VALID_REPLY", "valid_reply"]

VALID_REPLY = {
    "skill_id": "any",
    "criteria": [],  # filled per request: every criterion id of the prompt, the first one unmet
    "scores": {"correctness": 0.8, "clarity": 0.7, "conciseness": 0.6, "fluency": 0.9},
    "skill_scores": {},
    "feedback": ["Fine."],
    "highlights": [],
    "recommendations": [],
}
_CRITERION_LINE = re.compile(r"^- ([A-Za-z0-9_.-]+) \[", re.MULTILINE)


def valid_reply(payload: dict) -> dict:
    """VALID_REPLY judging the criteria listed in the request's system message."""
    system = next((m.get("content", "") for m in payload.get("messages", []) if m.get("role") == "system"), "")
    ids = _CRITERION_LINE.findall(system if isinstance(system, str) else "")
    return {**VALID_REPLY, "criteria": [{"id": cid, "met": i > 0} for i, cid in enumerate(ids)]}


def _completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-obs",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200},
    }


class ScriptedOpenAI:
    def __init__(self, *, flaky_failures: int = 3, hold_calls: int = 3) -> None:
        self.requests: list[dict[str, Any]] = []
        self.flaky_failures = flaky_failures
        self.hold_calls = hold_calls
        self.release = threading.Event()
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                payload = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                fake.requests.append(
                    {"path": self.path, "json": payload, "headers": {k.lower(): v for k, v in self.headers.items()}}
                )
                status, body = fake._answer(json.dumps(payload), payload)
                raw = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, name="scripted-openai", daemon=True
        )

    def _count(self, marker: str) -> int:
        with self._lock:
            self._counts[marker] = self._counts.get(marker, 0) + 1
            return self._counts[marker]

    def _answer(self, prompt: str, payload: dict) -> tuple[int, dict]:
        error = {"error": {"message": "scripted failure", "type": "test_error", "param": None, "code": None}}
        if "REJECTME" in prompt:  # like real providers, the 400 quotes what it refused
            return 400, {"error": {**error["error"], "message": f"scripted failure; refused input: {prompt[-400:]}"}}
        if "FLAKYONCE" in prompt and self._count("FLAKYONCE") <= self.flaky_failures:
            return 500, error
        if "HOLDME" in prompt and self._count("HOLDME") <= self.hold_calls:
            self.release.wait(30)
        return 200, _completion(json.dumps(valid_reply(payload)))

    def calls_with(self, marker: str) -> int:
        return self._counts.get(marker, 0)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> ScriptedOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
