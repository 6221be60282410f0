"""Chat tests run against the real server (`coachup api`: gunicorn gthread) on the embedded broker and SQLite."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest
from httpx_sse import connect_sse

from tests.conftest import TEST_HASH_SECRET
from tests.support.api_server import ApiServer


def b64(value) -> str:
    """base64url JSON without padding, as the front end encodes `history`, `userProfile`, `userGoals`."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def chat_env(data_dir, **extra: str) -> dict[str, str]:
    return {
        "COACHUP_ENV": "test",
        "COACHUP_DATA_DIR": str(data_dir),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "CHAT_OFFLINE_FIRST_TOKEN_MS": "0",
        "CHAT_OFFLINE_TOKEN_MS": "0",
        **extra,
    }


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """An offline-provider API whose model thinks 400 ms before its first token (heartbeats every 50 ms) and
    then streams a token every 20 ms."""
    data = tmp_path_factory.mktemp("chat-api")
    env = chat_env(data, CHAT_OFFLINE_FIRST_TOKEN_MS="400", CHAT_OFFLINE_TOKEN_MS="20", CHAT_HEARTBEAT_MS="50")
    server = ApiServer(env, data / "api.log").wait_ready()
    yield server
    server.stop()


def read_stream(base: str, params: dict, headers: dict | None = None, timeout: float = 30) -> dict:
    """Open `GET /chat/stream` and read it with a real SSE client until `[DONE]` (or the end)."""
    rid = str(uuid.uuid4())
    out: dict = {"events": [], "data": [], "comments": 0, "request_id": rid}
    with httpx.Client(timeout=timeout) as client:
        with connect_sse(
            client, "GET", base + "/chat/stream", params=params, headers={"x-request-id": rid, **(headers or {})}
        ) as source:
            out["status"], out["headers"] = source.response.status_code, source.response.headers
            for sse in source.iter_sse():
                out["events"].append((sse.event, sse.data))
                if sse.event == "message":
                    if sse.data == "[DONE]":
                        out["done"] = True
                        break
                    out["data"].append(sse.data)
    out["reply"] = "".join(out["data"])
    return out
