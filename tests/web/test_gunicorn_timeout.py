"""A request stuck past gunicorn's worker timeout gets a JSON 504, counted and logged, and the server lives on.

gthread's main loop heartbeats on its own, so gunicorn never times a stuck request out: with the store hung
(its PostgreSQL SIGSTOPped) a request held its client for as long as the stall lasted. The real server
(`coachup api`, two workers, `--timeout 2`) on a private PostgreSQL that the test stops.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest
import requests

from tests.conftest import TEST_HASH_SECRET
from tests.support.api_server import ApiServer
from tests.support.private_pg import PrivatePostgres
from tests.support.worker import pool_children

TIMEOUT_S = 2


@pytest.fixture
def stalled(tmp_path):
    pg = PrivatePostgres()
    env = {
        "COACHUP_ENV": "test",
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_DATABASE_URL": pg.url,
        "GUNICORN_CMD_ARGS": f"--timeout {TIMEOUT_S}",
    }
    api = ApiServer(env, tmp_path / "api.log").wait_ready()
    postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
    frozen: list[int] = []

    def freeze() -> None:
        frozen.extend([postmaster, *pool_children(postmaster)])
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)

    try:
        yield api, freeze
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        api.stop()
        pg.close()


def _request(port: int, path: str) -> tuple[int, dict, bytes, float]:
    """One raw GET; (status, headers, body, seconds), reading until the server closes the connection."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nx-request-id: stuck-req-1\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body, time.monotonic() - started


def test_a_request_stuck_on_a_hung_store_gets_a_json_504_within_the_worker_timeout(stalled):
    api, freeze = stalled
    # Given a store that hangs (its PostgreSQL stopped, not down: connections neither answer nor fail)
    freeze()
    # When a request needs it
    status, headers, body, seconds = _request(api.port, "/api/v1/jobs/0b7c0a4e-0000-4000-8000-000000000001")
    # Then it is answered with the JSON envelope soon after the worker timeout, and only once
    assert status == 504 and headers["content-type"] == "application/json", (status, body)
    assert json.loads(body)["error"]["type"] == "timeout" and headers["x-request-id"] == "stuck-req-1"
    assert TIMEOUT_S + 1 <= seconds < TIMEOUT_S + 4, seconds  # the timeout and its 1 s grace
    # And it is logged as JSON and counted, and the server still answers other requests meanwhile
    [event] = api.events("http_request_timeout")
    assert event["status"] == 504 and event["requestId"] == "stuck-req-1"
    assert requests.get(api.url + "/health", timeout=5).status_code == 200
    metrics = requests.get(api.url + "/metrics", timeout=5).text
    assert 'coachup_http_server_rejections_total{status="504",type="timeout"} 1.0' in metrics
