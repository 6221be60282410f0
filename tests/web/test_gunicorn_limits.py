"""Proxied requests carry the browser's headers: the real server (`coachup api`, gunicorn) takes 16 KB of
them, and whatever it refuses is answered with the JSON error body, never gunicorn's HTML page."""

from __future__ import annotations

import socket

import pytest
import requests

from tests.conftest import TEST_HASH_SECRET
from tests.support.api_server import ApiServer


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("gunicorn-limits")
    env = {"COACHUP_ENV": "test", "COACHUP_DATA_DIR": str(data_dir), "COACHUP_HASH_SECRET": TEST_HASH_SECRET}
    server = ApiServer(env, data_dir / "api.log").wait_ready()
    yield server
    server.stop()


def _cookie(size: int) -> str:
    """A browser-like Cookie header of about `size` bytes (many name=value pairs)."""
    pairs, i = [], 0
    while sum(len(p) + 2 for p in pairs) < size:
        pairs.append(f"__session_{i}=" + "x" * 90)
        i += 1
    return "; ".join(pairs)


def _raw(api: ApiServer, request: bytes) -> tuple[int, dict, bytes]:
    """Send bytes as they are (no client-side checks); (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _is_json_error(resp_headers: dict, body: bytes, kind: str) -> bool:
    import json

    return resp_headers["content-type"].startswith("application/json") and json.loads(body)["error"]["type"] == kind


def test_a_16_kb_cookie_and_the_proxys_other_headers_pass(api):
    cookie = _cookie(16 * 1024)
    resp = requests.post(
        api.url + "/messages/ingest",
        json={"sessionId": "s-cookie", "messageId": "k3j9x0q2ab", "role": "user", "content": "Hello there."},
        headers={"cookie": cookie, "user-agent": "Mozilla/5.0 " + "x" * 200, "x-request-id": "k3j9x0q2ab"},
        timeout=10,
    )
    assert len(cookie) >= 16 * 1024
    assert resp.status_code == 200, resp.text
    assert resp.json()["state"] == "active" and resp.headers["x-request-id"] == "k3j9x0q2ab"


def test_one_header_over_gunicorns_field_limit_gets_a_json_431(api):
    cookie = _cookie(40 * 1024).encode()
    status, headers, body = _raw(api, b"GET /health HTTP/1.1\r\nHost: x\r\nCookie: " + cookie + b"\r\n\r\n")
    assert status == 431 and _is_json_error(headers, body, "headers_too_large") and headers["x-request-id"]
    assert b"<html" not in body.lower()


def test_headers_under_each_field_limit_but_over_32_kib_in_total_get_a_json_431(api):
    big = {f"x-forwarded-{i}": "v" * 12_000 for i in range(3)}
    resp = requests.get(api.url + "/health", headers=big, timeout=10)
    assert resp.status_code == 431 and resp.json()["error"]["type"] == "headers_too_large"


def test_a_too_long_request_line_or_a_malformed_request_is_json_too(api):
    status, headers, body = _raw(api, b"GET /health?x=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 414 and _is_json_error(headers, body, "uri_too_long")
    status, headers, body = _raw(api, b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header Name: y\r\n\r\n")
    assert status == 400 and _is_json_error(headers, body, "bad_request") and b"<html" not in body.lower()


def _rejections(api: ApiServer) -> dict[tuple[str, str], float]:
    """`coachup_http_server_rejections_total` by (status, type), as the server's /metrics reports it."""
    import re

    text = requests.get(api.url + "/metrics", timeout=10).text
    out = {}
    for m in re.finditer(r"^coachup_http_server_rejections_total\{([^}]*)\} ([0-9.e+]+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        out[(labels["status"], labels["type"])] = float(m.group(2))
    return out


def test_each_answer_gunicorn_gives_itself_is_counted_and_logged_as_json(api):
    before = _rejections(api)
    logged = len(api.events("http_request_rejected"))
    _raw(api, b"GET /health?x=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    _raw(api, b"GET /health HTTP/1.1\r\nHost: x\r\nCookie: " + _cookie(40 * 1024).encode() + b"\r\n\r\n")
    _raw(api, b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header Name: y\r\n\r\n")
    after = _rejections(api)
    for key in (("414", "uri_too_long"), ("431", "headers_too_large"), ("400", "bad_request")):
        assert after.get(key, 0) - before.get(key, 0) == 1, (key, before, after)
    events = api.events("http_request_rejected")[logged:]
    assert sorted(e["status"] for e in events) == [400, 414, 431]
    assert all(e["requestId"] and e["error"]["type"] for e in events)
