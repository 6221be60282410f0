"""A local server that speaks OpenAI's streaming chat completions API (`POST /v1/chat/completions` with
`"stream": true`): SSE `chat.completion.chunk` objects over HTTP/1.1 chunked encoding, a usage chunk when
`stream_options.include_usage` is set, then `data: [DONE]`. Stdlib only.

A marker word in the last user message picks a behaviour: `SLOWSTART` holds the first token `slow_first_s`;
`MIDERROR` sends three tokens then an `{"error": ...}` event (as OpenAI does when generation fails);
`MIDCUT` sends three tokens then drops the connection without ending the chunked body; `HTTP500` answers 500
before any token; `LONGREPLY` streams `long_tokens` tokens `token_delay_s` apart. Every call is recorded with
how many chunks reached the socket and whether the client went away before the end.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeStreamingOpenAI", "REPLY_WORDS"]

REPLY_WORDS = "Hello from the streaming fake, here is a calm and clear reply for you.".split(" ")
PROMPT_TOKENS, MODEL = 321, "gpt-4o-mini"


class _ClientGone(Exception):
    pass


class FakeStreamingOpenAI:
    def __init__(self, *, token_delay_s: float = 0.0, slow_first_s: float = 3.0, long_tokens: int = 400) -> None:
        self.calls: list[dict[str, Any]] = []
        self.token_delay_s, self.slow_first_s, self.long_tokens = token_delay_s, slow_first_s, long_tokens
        self.stopping = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                call = {
                    "path": self.path,
                    "json": body,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "chunks_sent": 0,
                    "client_gone": False,
                    "finished": False,
                }
                fake.calls.append(call)
                try:
                    fake._serve(self, body, call)
                except (_ClientGone, BrokenPipeError, ConnectionResetError):
                    call["client_gone"] = True
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    # ---- protocol --------------------------------------------------------------------------------------------
    @staticmethod
    def _write(handler, payload: bytes) -> None:
        handler.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        handler.wfile.flush()

    def _event(self, handler, obj: dict | str, call: dict) -> None:
        data = obj if isinstance(obj, str) else json.dumps(obj)
        self._write(handler, f"data: {data}\n\n".encode())
        call["chunks_sent"] += 1

    @staticmethod
    def _chunk(delta: dict, finish: str | None = None) -> dict:
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def _serve(self, handler, body: dict, call: dict) -> None:
        messages = body.get("messages") or []
        last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        last = last if isinstance(last, str) else json.dumps(last)
        if "HTTP500" in last:
            raw = json.dumps({"error": {"message": "scripted failure", "type": "server_error"}}).encode()
            handler.send_response(500)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(raw)))
            handler.end_headers()
            handler.wfile.write(raw)
            return
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        words = [f"w{i} " for i in range(self.long_tokens)] if "LONGREPLY" in last else REPLY_WORDS
        if "SLOWSTART" in last and self.stopping.wait(self.slow_first_s):
            return
        self._event(handler, self._chunk({"role": "assistant", "content": ""}), call)
        for i, word in enumerate(words):
            if i == 3 and "MIDERROR" in last:
                self._event(handler, {"error": {"message": "generation failed", "type": "server_error"}}, call)
                self._write(handler, b"")
                return
            if i == 3 and "MIDCUT" in last:
                return  # the connection closes with the chunked body unfinished
            if i and self.token_delay_s and self.stopping.wait(self.token_delay_s):
                return
            text = word if i == len(words) - 1 else word + ("" if word.endswith(" ") else " ")
            self._event(handler, self._chunk({"content": text}), call)
        self._event(handler, self._chunk({}, "stop"), call)
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": len(words), "total_tokens": 0}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            self._event(handler, {**self._chunk({}), "choices": [], "usage": usage}, call)
        self._event(handler, "[DONE]", call)
        self._write(handler, b"")
        call["finished"] = True

    # ---- control ---------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def reply_text(self) -> str:
        return " ".join(REPLY_WORDS)

    def start(self) -> FakeStreamingOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
