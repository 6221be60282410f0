"""`GET /chat/stream` on the real server with the offline coach, read by a real SSE client (httpx-sse):
the framing the front end's proxy and `EventSource` rely on, bad input refused before the stream, heartbeats
while the model thinks, and a client that leaves stops the model."""

from __future__ import annotations

import json
import socket
import time
import uuid

import httpx

from coachup.chat import ChatInputs, build_prompt
from coachup.chat.inputs import Message
from coachup.chat.offline import OfflineCoachModel
from coachup.chat.prompt import resolve_prompt
from tests.chat.conftest import b64, read_stream
from tests.support.wait import wait_until


def _expected_reply(prompt: str, history: list[dict], goals=()) -> str:
    msgs = tuple(Message(m["role"], m["content"]) for m in history)
    text, before = resolve_prompt(prompt, msgs)
    messages, _ = build_prompt(ChatInputs(prompt=text, history=before, user_goals=list(goals)))
    return OfflineCoachModel().reply_for(messages)


def test_a_reply_streams_as_the_front_end_reads_it(api):
    # Given a voice-loop request: prompt, session, base64url history ending with that prompt, goals
    prompt = "Um, I want to sound calmer when I, uh, present the quarterly numbers to my team."
    history = [
        {"role": "user", "content": "Hi coach, can we practise my update?"},
        {"role": "assistant", "content": "Of course. Tell me what you will say."},
        {"role": "user", "content": prompt},
    ]
    goals = [{"title": "Cut filler words"}]
    # When the front end's proxy opens the stream
    got = read_stream(
        api.base,
        {"prompt": prompt, "sessionId": "sess-chat-1", "history": b64(history), "userGoals": b64(goals), "rid": "x"},
        headers={"accept": "text/event-stream", "x-tracked-skill-id": "clarity_eloquence"},
    )
    # Then the headers it passes through are there, and the request id is echoed
    h = got["headers"]
    assert got["status"] == 200 and h["content-type"] == "text/event-stream; charset=utf-8"
    assert h["x-chat-provider"] == "offline" and h["x-chat-model"] == "coach-offline-v1"
    assert "no-store" in h["cache-control"] and h["x-request-id"] == got["request_id"]
    # and named events come first: the rendered prompt, then the model
    names = [name for name, _ in got["events"]]
    assert names[:2] == ["prompt", "model"] and got.get("done") is True
    prompt_event = json.loads(got["events"][0][1])
    assert prompt_event["user"] == prompt and "Cut filler words" in prompt_event["system"]
    assert json.loads(got["events"][1][1]) == {"provider": "offline", "model": "coach-offline-v1"}
    # and the data chunks, concatenated in order, are the coach's whole reply to this conversation
    assert len(got["data"]) > 3, "the reply arrives in several chunks"
    assert got["reply"] == _expected_reply(prompt, history, goals)
    assert "filler" in got["reply"] and "Cut filler words" in got["reply"]


def test_the_chat_page_sends_only_history_and_gets_a_reply_to_its_last_message(api):
    history = [{"role": "system", "content": "Summary so far: the learner prepares a pitch."}]
    history.append({"role": "user", "content": "Thanks coach, that is all for today, bye!"})
    got = read_stream(api.base, {"history": b64(history)})
    assert got["reply"].endswith("Good luck!")  # the closing cue that ends the interaction on ingest


def test_heartbeats_are_sent_while_the_model_thinks(api):
    # Given a model that thinks 400 ms and a 50 ms heartbeat, when the stream is read line by line
    lines = []
    with httpx.stream("GET", api.base + "/chat/stream", params={"prompt": "Hello there coach"}, timeout=30) as resp:
        for line in resp.iter_lines():
            lines.append(line)
            if line.startswith("data: ") and not line.startswith("data: {"):
                break  # the first reply chunk
    # Then comment heartbeats came before the first reply chunk
    assert sum(1 for line in lines if line == ": ping") >= 3, lines


def test_bad_input_gets_a_json_4xx_before_any_stream(api):
    cases = [
        ({"prompt": "hi", "history": "not*base64"}, "history is not valid base64url"),
        ({"prompt": "hi", "history": b64({"role": "user"})}, "history must be a JSON array"),
        ({"prompt": "hi", "userGoals": "e30"}, None),  # {} is accepted as "no goals"
        ({"prompt": "x" * 4001}, "prompt is longer than 4000"),
        ({}, "prompt is required"),
        ({"prompt": "hi", "model": "gpt-5-unlimited"}, "model must be one of"),
        ({"prompt": "hi", "sessionId": "bad id!"}, "sessionId must be"),
        ({"prompt": "hi", "history": b64([{"role": "robot", "content": "x"}])}, "history[0].role"),
    ]
    for params, message in cases:
        resp = httpx.get(api.base + "/chat/stream", params=params, timeout=30)
        if message is None:
            assert resp.status_code == 200
            continue
        assert resp.status_code == 400, (params, resp.text[:200])
        assert resp.headers["content-type"].startswith("application/json")
        error = resp.json()["error"]
        assert error["type"] == "validation_error" and message in error["message"], error


def test_an_oversized_query_gets_json_not_gunicorns_html(api):
    resp = httpx.get(api.base + "/chat/stream", params={"prompt": "y" * 9000}, timeout=30)
    assert resp.status_code == 414 and resp.json()["error"]["type"] == "uri_too_long"


def test_a_client_that_leaves_stops_the_model(api):
    # Given a long reply paced at 20 ms a token: read the first reply chunk, then close the socket
    rid = str(uuid.uuid4())
    long_prompt = " ".join(["I keep talking about the roadmap and the budget and the hiring plan"] * 12) + "."
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    query = httpx.QueryParams({"prompt": long_prompt})
    sock.sendall(f"GET /chat/stream?{query} HTTP/1.1\r\nHost: x\r\nx-request-id: {rid}\r\n\r\n".encode())
    seen = b""
    while b"data: Thanks" not in seen:
        seen += sock.recv(4096)
    started = time.monotonic()
    sock.close()
    # Then the stream is logged as a disconnect, and the model call ended as cancelled, soon
    stream = wait_until(
        lambda: [e for e in api.events("chat_stream") if e.get("requestId") == rid], timeout=10, what="chat_stream"
    )[0]
    call = wait_until(
        lambda: [e for e in api.events("provider.chat") if e.get("requestId") == rid], timeout=10, what="the span"
    )[0]
    assert stream["disconnect"] is True and stream["outcome"] == "disconnect"
    assert call["status"] == "cancelled"
    full = len(_expected_reply(long_prompt, []).split())
    assert stream["chunks"] < full, "the model stopped before the end of its reply"
    assert call["latencyMs"] < full * 20, "the model call ended long before the reply would have"
    assert time.monotonic() - started < 10
    # and the log line carries ids and counts, never the text
    assert "roadmap" not in json.dumps(stream) and "roadmap" not in json.dumps(call)
