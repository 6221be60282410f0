"""A local HTTP server speaking OpenAI's speech API (`/v1/audio/transcriptions`, `/v1/audio/speech`).

Scriptable: `script` is a list of failures to serve first (`401`, `429`, `500`, or `"slow"` = answer after
`slow_s`), then it answers normally. Records every request's path and headers (never bodies).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from coachup.speech.audio import tone_wav

TRANSCRIPT = "hello from the fake whisper"


class FakeOpenAISpeech:
    def __init__(self) -> None:
        self.script: list = []
        self.slow_s = 3.0
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                with owner._lock:
                    owner.requests.append({"path": self.path, "headers": dict(self.headers)})
                    step = owner.script.pop(0) if owner.script else None
                if step == "slow":
                    time.sleep(owner.slow_s)
                elif isinstance(step, int):
                    return self._send(step, b'{"error":{"message":"scripted"}}', "application/json")
                if self.headers.get("authorization") != "Bearer sk-test-speech-0000":
                    return self._send(401, b'{"error":{"message":"bad key"}}', "application/json")
                if self.path == "/v1/audio/transcriptions":
                    body = {
                        "text": TRANSCRIPT,
                        "language": "english",
                        "duration": 2.5,
                        "segments": [{"avg_logprob": -0.1}],
                    }
                    return self._send(200, json.dumps(body).encode(), "application/json")
                if self.path == "/v1/audio/speech":
                    return self._send(200, tone_wav(500), "audio/wav")
                return self._send(404, b"{}", "application/json")

            def _send(self, status, body, ctype):
                try:
                    self.send_response(status)
                    self.send_header("content-type", ctype)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def reset(self) -> None:
        with self._lock:
            self.script.clear()
            self.requests.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
