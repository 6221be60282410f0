"""The README quick start, as a user runs it: `make run`, wait for health, assess, Ctrl-C.

Runs on the embedded default (no broker configured), on free ports and a private data directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.services import free_port, port_open
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]


def _processes_using(marker: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.drill
def test_make_run_serves_an_assessment_and_stops_on_ctrl_c(tmp_path):
    # every listener on a free port: the suite's own workers may hold the worker metrics default (9540), which
    # `coachup worker` now refuses to share (it would otherwise restart, refused, until the test times out)
    api_port, flower_port, metrics_port = free_port(), free_port(), free_port()
    data_dir = tmp_path / f"var-{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COACHUP_", "FLOWER_", "AI_PROVIDER"))}
    env.update(
        COACHUP_API_PORT=str(api_port),
        COACHUP_FLOWER_PORT=str(flower_port),
        COACHUP_WORKER_METRICS_PORT=str(metrics_port),
        COACHUP_DATA_DIR=str(data_dir),
    )
    out = open(tmp_path / "run.out", "wb")
    err = open(tmp_path / "run.err", "wb")
    proc = subprocess.Popen(["make", "run"], cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True)
    base = f"http://127.0.0.1:{api_port}"
    try:

        def healthy():
            if proc.poll() is not None:
                raise AssertionError("make run exited: " + (tmp_path / "run.err").read_text()[-2000:])
            try:
                return requests.get(base + "/api/health", timeout=2).status_code == 200
            except requests.RequestException:  # not listening yet, or gunicorn still booting its workers
                return False

        wait_until(healthy, timeout=180, interval=0.5, what="make run to report healthy")
        banner = (tmp_path / "run.err").read_text()
        assert "embedded" in banner and f"http://127.0.0.1:{api_port}" in banner
        assert f"http://127.0.0.1:{flower_port}" in banner

        resp = requests.post(
            base + "/assessments/run",
            json={
                "sessionId": "quickstart",
                "transcript": [
                    {"role": "user", "content": "I led the launch review and we shipped on Friday."},
                    {"role": "user", "content": "Next I will shorten our onboarding checklist."},
                ],
            },
            timeout=5,
        )
        assert resp.status_code == 202, resp.text

        def done():
            body = requests.get(base + "/assessments/quickstart", timeout=5).json()
            assert body["status"] != "failed", body
            return body if body["status"] == "done" else None

        summary = wait_until(done, timeout=90, interval=0.5, what="the assessment to finish")["summary"]
        assert set(summary["scores"]) == {"correctness", "clarity", "conciseness", "fluency"}

        user, password = (data_dir / "flower-auth").read_text().strip().split(":", 1)
        wait_until(lambda: port_open("127.0.0.1", flower_port), timeout=60, what="Flower to listen")
        flower = f"http://127.0.0.1:{flower_port}"
        assert requests.get(flower + "/workers", timeout=5).status_code == 401
        assert requests.get(flower + "/workers", auth=(user, password), timeout=5).status_code == 200
    finally:
        # Ctrl-C: the terminal sends SIGINT to the foreground process group
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        out.close()
        err.close()
    wait_until(
        lambda: not _processes_using(str(data_dir)), timeout=60, interval=0.5, what="every child of make run to exit"
    )
    assert not port_open("127.0.0.1", api_port) and not port_open("127.0.0.1", flower_port)
    assert "stopped" in (tmp_path / "run.err").read_text()
