"""The `openai` chat provider against a local server that speaks OpenAI's streaming chat completions API:
tokens stream through, usage becomes tokens and cost, errors before and during the stream end it with a typed
`error` event, a silent provider hits the first-token deadline, and a client that leaves closes the upstream
response so no more tokens are generated."""

from __future__ import annotations

import json
import socket
import uuid

import httpx
import pytest

from tests.chat.conftest import chat_env, read_stream
from tests.observability.promtext import value
from tests.support.api_server import ApiServer
from tests.support.fake_openai_stream import MODEL, PROMPT_TOKENS, REPLY_WORDS, FakeStreamingOpenAI
from tests.support.wait import wait_until


@pytest.fixture(scope="module")
def fake():
    server = FakeStreamingOpenAI(token_delay_s=0.02, slow_first_s=5).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(fake, tmp_path_factory):
    data = tmp_path_factory.mktemp("chat-openai")
    env = chat_env(
        data,
        AI_PROVIDER="openai",
        OPENAI_API_KEY="sk-test-chat-0000",
        OPENAI_BASE_URL=fake.base_url,
        CHAT_FIRST_TOKEN_TIMEOUT_MS="1000",
        CHAT_HEARTBEAT_MS="200",
    )
    server = ApiServer(env, data / "api.log").wait_ready()
    yield server
    server.stop()


def _calls_with(fake, marker: str) -> list[dict]:
    return [c for c in fake.calls if marker in json.dumps(c["json"]["messages"][-1])]


def test_tokens_stream_from_the_openai_compatible_endpoint(api, fake):
    got = read_stream(api.base, {"prompt": "Please help me open my talk", "sessionId": "sess-oa-1"})
    assert got["headers"]["x-chat-provider"] == "openai" and got["headers"]["x-chat-model"] == MODEL
    assert got["reply"] == " ".join(REPLY_WORDS) and got.get("done") is True
    call = _calls_with(fake, "Please help me open my talk")[-1]
    assert call["json"]["stream"] is True and call["json"]["stream_options"] == {"include_usage": True}
    assert call["headers"]["x-request-id"] == got["request_id"]  # the request id reaches the provider
    assert call["headers"]["authorization"] == "Bearer sk-test-chat-0000"


def test_usage_metadata_becomes_tokens_and_cost(api, fake):
    rid = read_stream(api.base, {"prompt": "Count my tokens please"})["request_id"]
    span = wait_until(
        lambda: [e for e in api.events("provider.chat") if e.get("requestId") == rid], timeout=10, what="span"
    )[0]
    assert span["status"] == "ok"
    assert (span["tokensIn"], span["tokensOut"]) == (PROMPT_TOKENS, len(REPLY_WORDS))
    expected_cents = (PROMPT_TOKENS * 0.15 + len(REPLY_WORDS) * 0.60) / 1_000_000 * 100  # gpt-4o-mini prices
    assert span["costCents"] == pytest.approx(expected_cents, abs=1e-4)
    text = httpx.get(api.base + "/metrics", timeout=10).text
    labels = {"provider": "openai", "model": MODEL}
    assert value(text, "coachup_provider_tokens_in_total", **labels) >= PROMPT_TOKENS
    assert value(text, "coachup_provider_tokens_out_total", **labels) >= len(REPLY_WORDS)
    assert value(text, "coachup_provider_cost_cents_total", **labels) > 0
    assert value(text, "coachup_chat_first_token_seconds_count", **labels) >= 1
    assert value(text, "coachup_chat_stream_duration_seconds_count", **labels) >= 1


@pytest.mark.parametrize(
    "marker,error_type",
    [("MIDERROR", "upstream_unavailable"), ("MIDCUT", "upstream_unavailable"), ("HTTP500", "upstream_unavailable")],
)
def test_provider_errors_end_the_stream_with_a_typed_error_event(api, fake, marker, error_type):
    got = read_stream(api.base, {"prompt": f"Trigger {marker} now"})
    errors = [json.loads(data) for name, data in got["events"] if name == "error"]
    assert errors and errors[0]["error"]["type"] == error_type, got["events"]
    assert got.get("done") is None, "a failed reply never ends with [DONE]"
    if marker != "HTTP500":
        assert got["reply"] == " ".join(REPLY_WORDS[:3]) + " ", "the tokens before the failure arrived in order"
    stream = wait_until(
        lambda: [e for e in api.events("chat_stream") if e.get("requestId") == got["request_id"]],
        timeout=10,
        what="log",
    )[0]
    assert stream["outcome"] == "error" and stream["error"] == error_type


def test_no_first_token_before_the_deadline_ends_the_stream_clearly(api, fake):
    # Given a provider that holds its first token 5 s and a 1 s deadline
    got = read_stream(api.base, {"prompt": "SLOWSTART please"}, timeout=20)
    # Then the stream ends with a timeout event, then [DONE], and no reply text
    timeouts = [json.loads(data) for name, data in got["events"] if name == "timeout"]
    assert timeouts and timeouts[0]["error"]["type"] == "first_token_timeout", got["events"]
    assert got.get("done") is True and got["reply"] == ""
    stream = wait_until(
        lambda: [e for e in api.events("chat_stream") if e.get("requestId") == got["request_id"]],
        timeout=10,
        what="log",
    )[0]
    assert stream["outcome"] == "timeout" and stream["firstTokenMs"] is None
    assert 900 <= stream["streamDurationMs"] < 4000


def test_a_client_that_leaves_stops_the_provider_call(api, fake):
    # Given a 400-token reply at 20 ms a token (8 s), when the client reads a few tokens and leaves
    rid = str(uuid.uuid4())
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    sock.sendall(f"GET /chat/stream?prompt=LONGREPLY+now HTTP/1.1\r\nHost: x\r\nx-request-id: {rid}\r\n\r\n".encode())
    seen = b""
    while seen.count(b"data: w") < 3:
        seen += sock.recv(4096)
    sock.close()
    # Then the upstream response is closed long before the provider finished: no tokens for nobody
    call = wait_until(lambda: [c for c in _calls_with(fake, "LONGREPLY") if c["client_gone"]], timeout=10, what="gone")[
        0
    ]
    assert not call["finished"] and call["chunks_sent"] < 100, call["chunks_sent"]
    span = wait_until(
        lambda: [e for e in api.events("provider.chat") if e.get("requestId") == rid], timeout=10, what="span"
    )[0]
    assert span["status"] == "cancelled"
