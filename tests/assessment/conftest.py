"""Fixtures for the assessment tests: settings, turn builders and a local fake OpenAI server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from coachup.assessment.types import Turn
from coachup.settings import Settings, load_settings

CRISP = [
    "I ran the quarterly review on Monday. Revenue grew eight percent and churn fell to two percent.",
    "Next quarter I will focus on onboarding, because new customers take too long to succeed.",
]
RAMBLING = [
    "So, um, basically the review, like, it went, uh, okay I guess, um, and revenue was, you know, "
    "kind of up, like, um, a bit, and, uh, yeah.",
    "And, um, the the churn, like, it went down, I think, um, sort of, basically, um, maybe.",
]


def make_turns(texts: list[str], *, with_assistant: bool = False) -> list[Turn]:
    """User turns (optionally interleaved with assistant turns), indexed from 0."""
    turns: list[Turn] = []
    for text in texts:
        turns.append(Turn(index=len(turns), role="user", content=text))
        if with_assistant:
            turns.append(Turn(index=len(turns), role="assistant", content="Tell me more about that."))
    return turns


@pytest.fixture
def base_settings() -> Settings:
    return load_settings({})


def chat_completion(
    content: str, *, model: str = "gpt-4o-mini-2024-07-18", prompt_tokens: int = 1200, completion_tokens: int = 300
) -> dict[str, Any]:
    """A realistic `POST /v1/chat/completions` response body."""
    return {
        "id": "chatcmpl-test123",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_test",
    }


class FakeOpenAI:
    """A stdlib HTTP server on 127.0.0.1 speaking just enough of the OpenAI chat completions API."""

    def __init__(self) -> None:
        self.status = 200
        self.delay_s = 0.0
        self.body: Callable[[dict], dict] = lambda request: chat_completion("{}")
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", 0))
                payload = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(
                    {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "json": payload}
                )
                if fake.delay_s:
                    fake.release.wait(fake.delay_s)
                if fake.status == 200:
                    data = fake.body(payload)
                else:
                    data = {
                        "error": {
                            "message": f"fake error {fake.status}",
                            "type": "test_error",
                            "param": None,
                            "code": str(fake.status),
                        }
                    }
                raw = json.dumps(data).encode()
                try:
                    self.send_response(fake.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(raw)))
                    self.send_header("x-request-id", "req_upstream_1")
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openai", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def openai_settings(fake_openai: FakeOpenAI) -> Settings:
    return load_settings(
        {
            "AI_PROVIDER_ASSESS": "openai",
            "OPENAI_API_KEY": "sk-test-not-a-real-key",
            "OPENAI_BASE_URL": fake_openai.base_url,
            "OPENAI_ASSESS_MODEL": "gpt-4o-mini",
        }
    ).replace(skill_timeout_ms=2000)


@pytest.fixture(name="make_turns")
def make_turns_fixture() -> Callable[..., list[Turn]]:
    return make_turns


@pytest.fixture
def crisp_turns() -> list[Turn]:
    return make_turns(CRISP, with_assistant=True)


@pytest.fixture
def rambling_turns() -> list[Turn]:
    return make_turns(RAMBLING, with_assistant=True)


@pytest.fixture
def crisp_texts() -> list[str]:
    return list(CRISP)


@pytest.fixture
def rambling_texts() -> list[str]:
    return list(RAMBLING)


@pytest.fixture
def completion() -> Callable[..., dict[str, Any]]:
    """Builds a realistic chat completion body (see `chat_completion`)."""
    return chat_completion
