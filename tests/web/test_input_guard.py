"""Issue 16, finding 7: client input never makes a 500, identically on SQLite and PostgreSQL.

Given the in-process API on each database, when a request carries a NUL or an unpaired surrogate in any text, id
field, query parameter or path, or a JSON body nested 1,000 deep, then the answer is a typed 400 JSON error and
nothing is stored; and an unhandled error's log line says where it failed (`exc_frames`).
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from sqlalchemy import func, select

from coachup.logs import configure_logging
from coachup.settings import load_settings
from coachup.store.models import Job, TranscriptTurn
from tests.conftest import TEST_HASH_SECRET
from tests.support.services import EmbeddedBrokerServer

DEEP = "[" * 1000 + "]" * 1000  # 2 KB
DEEP_OBJECT = '{"a":' * 1000 + "1" + "}" * 1000
GOOD_TURN = {"sessionId": "s1", "messageId": "m1", "role": "user", "content": "Hello there."}


@pytest.fixture
def client(store_url, tmp_path):
    from web import create_app

    settings = load_settings(
        {
            "COACHUP_DATA_DIR": str(tmp_path),
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "COACHUP_ENV": "test",
            "COACHUP_DATABASE_URL": store_url,
        }
    )
    server = EmbeddedBrokerServer(settings)
    app = create_app(settings, configure_logs=False)
    yield app.test_client()
    app.extensions["coachup"].store.engine.dispose()
    server.close()


def _stored(client) -> tuple[int, int]:
    store = client.application.extensions["coachup"].store
    with store.session() as s:
        return (
            s.scalar(select(func.count()).select_from(TranscriptTurn)),
            s.scalar(select(func.count()).select_from(Job)),
        )


def _json_routes() -> list[tuple[str, str]]:
    """Every documented operation that takes a JSON body, with its path's parameters filled in."""
    from web.openapi import SPEC

    routes = []
    for path, ops in SPEC["paths"].items():
        for method, op in ops.items():
            content = (op.get("requestBody") or {}).get("content", {}) if isinstance(op, dict) else {}
            if "application/json" in content:
                routes.append((method.upper(), path.replace("{", "").replace("}", "")))
    return routes


def _assert_400(resp, kind: str) -> None:
    assert resp.status_code == 400, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.is_json and resp.get_json()["error"]["type"] == kind, resp.get_data(as_text=True)[:300]


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
def test_a_json_body_nested_1000_deep_is_a_400_on_every_json_route(client, body):
    routes = _json_routes()
    assert len(routes) >= 8  # the document lists every JSON route; an empty list would prove nothing
    for method, path in routes:
        resp = client.open(path, method=method, data=body, content_type="application/json")
        if resp.status_code in (401, 403):  # an admin route refuses before reading the body; still typed JSON
            assert resp.is_json
            continue
        _assert_400(resp, "invalid_json")


@pytest.mark.parametrize("bad", ["Hello\x00there", "Hello \ud800 there"], ids=["nul", "lone-surrogate"])
def test_a_nul_or_lone_surrogate_in_transcript_text_is_a_400_and_nothing_is_stored(client, bad):
    resp = client.post(
        "/messages/ingest",
        data=json.dumps({**GOOD_TURN, "content": bad}),  # json.dumps escapes both: \u0000 and \ud800
        content_type="application/json",
    )
    _assert_400(resp, "invalid_text")
    assert "content" in resp.get_json()["error"]["message"]
    inline = {"sessionId": "s2", "transcript": [{"messageId": "m1", "role": "user", "content": bad}]}
    resp = client.post("/assessments/run", data=json.dumps(inline), content_type="application/json")
    _assert_400(resp, "invalid_text")
    assert _stored(client) == (0, 0)


@pytest.mark.parametrize("bad", ["\x00", "s1\x00"], ids=["nul", "trailing-nul"])
def test_a_nul_in_an_id_field_or_key_is_a_400(client, bad):
    resp = client.post("/messages/ingest", json={**GOOD_TURN, "sessionId": bad})
    assert resp.status_code == 400 and resp.is_json
    resp = client.post("/messages/ingest", json={**GOOD_TURN, bad: "x"})
    _assert_400(resp, "invalid_text")
    assert _stored(client) == (0, 0)


@pytest.mark.parametrize(
    "url",
    [
        "/assessments/s1?groupId=%00",
        "/assessments/s1%00",
        "/api/v1/transcripts?sessionId=s1&groupId=%00",
        "/api/v1/skills?category=%00",
        "/api/v1/session-summary?sessionId=%00",
        "/api/v1/jobs/%00",
    ],
)
def test_a_nul_in_a_query_parameter_or_path_is_a_400(client, url):
    resp = client.get(url)
    _assert_400(resp, "invalid_text")


def test_an_unhandled_error_logs_where_it_failed(client):
    stream = io.StringIO()
    configure_logging("api", "test", stream=stream)
    try:
        app = client.application  # no request served yet, so a route may still be added

        @app.get("/__bug")
        def _boom():
            raise RuntimeError("secret detail")

        resp = client.get("/__bug")
        assert resp.status_code == 500 and resp.get_json()["error"]["type"] == "internal_error"
    finally:
        logging.getLogger().handlers[:] = [h for h in logging.getLogger().handlers if not getattr(h, "_coachup", 0)]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    doc = next(d for d in lines if d.get("event") == "api_unhandled_error")
    assert doc["exc_type"] == "RuntimeError" and any("_boom" in f for f in doc["exc_frames"])
    assert "secret detail" not in stream.getvalue()
