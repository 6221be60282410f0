"""Our SSE framing, decoded by a real SSE client (httpx-sse over an httpx response): whatever text a model
produces, the concatenated `message` data is exactly that text, and `[DONE]` only ever ends a reply."""

from __future__ import annotations

import httpx
import pytest
from httpx_sse import EventSource

from coachup.chat import sse

CHUNKS = [
    "Hello",
    " there,",
    " line one\nline two",
    "\r\nwindows\rold mac",
    "  leading spaces",
    "[DONE]",
    "naïve café ✓",
    "",
    "\n",
    "end.",
]


def _decode(body: str) -> list:
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body.encode())
    return list(EventSource(response).iter_sse())


@pytest.mark.parametrize("chunk", CHUNKS)
def test_each_chunk_round_trips_as_one_message_event(chunk):
    events = _decode(sse.data(chunk))
    expected = chunk.replace("\r\n", "\n").replace("\r", "\n")  # SSE has one line break: \n
    assert "".join(e.data for e in events) == expected
    assert all(e.event == "message" for e in events)
    assert all(e.data != "[DONE]" for e in events), "a model's [DONE] never ends the reply"


def test_a_whole_stream_reads_back_in_order():
    body = sse.event("prompt", {"system": "s\nx", "user": "u"}) + sse.comment("ping\nnot a line break")
    body += sse.event("model", {"provider": "offline", "model": "m"}) + "".join(sse.data(c) for c in CHUNKS) + sse.DONE
    events = _decode(body)
    assert [e.event for e in events[:2]] == ["prompt", "model"] and events[0].json()["system"] == "s\nx"
    messages = [e.data for e in events if e.event == "message"]
    assert messages[-1] == "[DONE]"
    expected = "".join(CHUNKS).replace("\r\n", "\n").replace("\r", "\n")
    assert "".join(messages[:-1]) == expected
