"""Limits: oversized headers 431, oversized bodies 413, too many form parts 413, and a huge upload is
refused without being held in memory."""

from __future__ import annotations

import io
import tracemalloc

import pytest

from .record import record


@pytest.fixture
def client(offline_settings):
    from web import create_app

    return create_app(offline_settings, configure_logs=False).test_client()


def _error(resp, status: int, type_: str) -> int:
    """Assert the typed error answer; the status the server gave (recorded as observed)."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:200])
    assert resp.get_json()["error"]["type"] == type_
    return resp.status_code


def test_oversized_headers_are_431(client):
    # 16 KB of forwarded browser headers pass (the front end's proxy sends them all); above 32 KiB: 431
    assert client.get("/health", headers={f"x-fwd-{i}": "a" * 4000 for i in range(4)}).status_code == 200
    seen = {_error(client.get("/health", headers={"x-padding": "a" * 33_000}), 431, "headers_too_large")}
    seen.add(
        _error(
            client.post("/messages/ingest", headers={f"x-h{i}": "b" * 400 for i in range(100)}, json={}),
            431,
            "headers_too_large",
        )
    )
    record("limit", "oversized headers (33 KB)", status="/".join(map(str, sorted(seen))))


def test_oversized_bodies_are_413_on_every_body_route(client, offline_settings):
    big = "x" * (offline_settings.max_content_length + 1)
    paths = ("/messages/ingest", "/assessments/run", "/api/v1/tts")
    seen = {_error(client.post(p, data=big, content_type="application/json"), 413, "payload_too_large") for p in paths}
    record("limit", "body over MAX_CONTENT_LENGTH", status="/".join(map(str, sorted(seen))), routes=len(paths))


def test_too_many_form_parts_are_413(client):
    form = {f"f{i}": "v" for i in range(1500)}  # werkzeug's MAX_FORM_PARTS is 1,000
    seen = {
        _error(client.post(path, data=form, content_type="multipart/form-data"), 413, "payload_too_large")
        for path in ("/assessments/run", "/api/v1/stt")
    }
    record("limit", "1,500 form parts", status="/".join(map(str, sorted(seen))))


class _Endless(io.RawIOBase):
    """A body stream of `size` bytes produced on demand (never held whole in memory)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self.left)
        buf[:n] = b"\0" * n
        self.left -= n
        self.served += n
        return n


def test_a_huge_upload_is_refused_without_holding_it_in_memory(client, offline_settings):
    size = offline_settings.stt_max_audio_bytes * 4  # 100 MiB declared
    body = _Endless(size)
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Response

    environ = EnvironBuilder(
        "/api/v1/stt", method="POST", content_type="multipart/form-data; boundary=x", data=b""
    ).get_environ()
    environ.update({"wsgi.input": body, "CONTENT_LENGTH": str(size)})
    tracemalloc.start()
    try:
        resp = Response.from_app(client.application, environ)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.status_code == 413 and b"payload_too_large" in resp.get_data()
    assert body.served < 1024 * 1024 and peak < 16 * 1024 * 1024, (body.served, peak)
    record(
        "limit",
        "100 MiB upload declared",
        status=resp.status_code,
        bytesRead=body.served,
        peakMiB=round(peak / 2**20, 1),
    )
