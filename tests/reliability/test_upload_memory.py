"""A huge or slow upload cannot exhaust the API's memory: the real server (`coachup api`, gunicorn, 2 workers)
on a free port, its workers' resident memory sampled while a 200 MiB chunked upload (no Content-Length, so
nothing can be refused up front) and a trickling upload hit `POST /api/v1/stt`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import TEST_HASH_SECRET
from tests.support.services import free_port
from tests.support.wait import wait_until
from tests.support.worker import pool_children

from .record import record

ROOT = Path(__file__).resolve().parents[2]
GUNICORN_TIMEOUT_S = 5  # a worker silent this long (stuck on a slow body) is replaced by the master
HUGE = 200 * 2**20
MIB = 2**20


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler:
    """The largest resident size any one gunicorn worker reached while the sampler ran."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in pool_children(self.master):
                self.peak = max(self.peak, _rss(pid))
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    data = tmp_path_factory.mktemp("upload-api")
    port = free_port()
    env = {
        **os.environ,
        "COACHUP_DATA_DIR": str(data),
        "COACHUP_API_HOST": "127.0.0.1",
        "COACHUP_API_PORT": str(port),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_ENV": "test",
        "GUNICORN_CMD_ARGS": f"--timeout {GUNICORN_TIMEOUT_S}",
    }
    from coachup.settings import load_settings
    from tests.support.services import EmbeddedBrokerServer

    broker = EmbeddedBrokerServer(load_settings(env))  # the embedded broker's server, as `make run` starts it
    log = open(data / "api.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "coachup.cli", "api", "--workers", "2"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy():
        assert proc.poll() is None, (data / "api.log").read_text()[-2000:]
        try:
            return requests.get(url + "/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, timeout=60, interval=0.2, what="the API to answer /health")
        wait_until(lambda: len(pool_children(proc.pid)) == 2, timeout=30, what="two gunicorn workers")
        yield url, port, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        broker.close()


def _head(port: int, extra: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        (
            f"POST /api/v1/stt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n" + extra + "\r\n"
        ).encode()
    )
    return sock


def _reader(sock: socket.socket, into: list[bytes]) -> threading.Thread:
    def run():
        try:
            while chunk := sock.recv(65536):
                into.append(chunk)
        except OSError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_200_mib_chunked_upload_is_refused_with_bounded_memory(api):
    url, port, proc = api
    baseline = max(_rss(p) for p in pool_children(proc.pid))
    # Given an upload with no Content-Length (chunked), so its size shows only while it is read
    sock = _head(port, "Transfer-Encoding: chunked\r\n")
    answer: list[bytes] = []
    reader = _reader(sock, answer)
    part = b'--xyz\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n'
    chunk = b"\0" * (256 * 1024)
    sent = 0
    with RssSampler(proc.pid) as rss:
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            while sent < HUGE and not answer:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:  # the server answered and closed while we were still sending
            pass
        reader.join(timeout=30)
    sock.close()
    # Then it is refused as too large, long before all of it was sent, and no worker grew by the upload
    status = b"".join(answer).split(b"\r\n", 1)[0]
    assert status.startswith(b"HTTP/1.1 413"), (status, sent)
    growth = rss.peak - baseline
    assert sent < HUGE and growth < 48 * MIB, (sent, growth)
    assert requests.get(url + "/health", timeout=5).status_code == 200
    record(
        "limit",
        "200 MiB chunked upload, no Content-Length",
        status=int(status.split()[1]),
        sentMiB=round(sent / MIB, 1),
        workerGrowthMiB=round(growth / MIB, 1),
    )


def test_a_trickling_upload_is_cut_off_and_holds_neither_memory_nor_the_api(api):
    url, port, proc = api
    baseline = max(_rss(p) for p in pool_children(proc.pid))
    # Given an upload that declares 10 MiB and sends 1 KiB every 50 ms (it would take ~9 minutes)
    sock = _head(port, f"Content-Length: {10 * MIB}\r\n")
    answer: list[bytes] = []
    reader = _reader(sock, answer)
    started, sent, closed_after = time.monotonic(), 0, None
    with RssSampler(proc.pid) as rss:
        try:
            while time.monotonic() - started < 6 * GUNICORN_TIMEOUT_S:
                sock.sendall(b"\0" * 1024)
                sent += 1024
                if not reader.is_alive():
                    break
                # meanwhile the API keeps answering others
                if sent % (40 * 1024) == 0:
                    assert requests.get(url + "/health", timeout=5).status_code == 200
                time.sleep(0.05)
        except OSError:
            pass
        reader.join(timeout=10)
        closed_after = time.monotonic() - started
    sock.close()
    # Then the server drops it within a few of its timeouts, memory stays flat, and the API still answers
    assert not reader.is_alive() and closed_after < 4 * GUNICORN_TIMEOUT_S, closed_after
    growth = rss.peak - baseline
    assert growth < 16 * MIB, growth
    wait_until(lambda: len(pool_children(proc.pid)) == 2, timeout=30, what="two gunicorn workers again")
    assert requests.get(url + "/health", timeout=5).status_code == 200
    record(
        "limit",
        "trickling upload (1 KiB / 50 ms)",
        closedAfterS=round(closed_after, 1),
        sentKiB=sent // 1024,
        workerGrowthMiB=round(growth / MIB, 1),
        gunicornTimeoutS=GUNICORN_TIMEOUT_S,
    )
