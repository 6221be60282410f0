"""Benchmark 3, API intake: `POST /assessments/run` under gunicorn (2 workers) and wrk, vs a bare Flask app.

Both servers run `gunicorn --workers 2` on loopback against the same Redis broker; wrk (1 thread, 8
connections) posts a 4-turn inline transcript with 3 tracked skills for `--seconds` (>= 15). The project
validates, stores the turns (PostgreSQL with `--database`, else SQLite), writes the job row and publishes; the bare app only publishes.
Reports requests/s, p50 and p99 (ms) for each and the throughput ratio (target >= 0.80, p99 <= 15 ms).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.assessment import SKILLS, TURNS
from bench.common import ROOT, bench_env, free_port, fresh_data_dir, load_average

__all__ = ["api_intake", "parse_wrk", "TARGET_RATIO", "TARGET_P99_MS"]

TARGET_RATIO = 0.80
TARGET_P99_MS = 15.0
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _lua(path: Path) -> None:
    """A wrk script posting the same transcript for a new session id each request (no row contention)."""
    body = {
        "sessionId": "SESSION",
        "trackedSkills": SKILLS,
        "transcript": [{"role": role, "content": content} for role, content in TURNS],
    }
    head, tail = json.dumps(body).split('"SESSION"')
    path.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        "local n = 0\nlocal tag = tostring(math.random(1, 1000000000))\n"
        "request = function()\n  n = n + 1\n"
        f"  local body = {json.dumps(head)} .. '\"bench-' .. tag .. '-' .. n .. '\"' .. {json.dumps(tail)}\n"
        "  return wrk.format(nil, nil, nil, body)\nend\n"
    )


def parse_wrk(text: str) -> dict:
    """requests/s, p50 and p99 (ms), non-2xx count from `wrk --latency` output."""

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        return round(float(m.group(1)) * _UNITS[m.group(2)], 3) if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    total = re.search(r"(\d+) requests in", text)
    return {
        "requests_per_s": float(rps.group(1)) if rps else 0.0,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "requests": int(total.group(1)) if total else 0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def _serve(target: str, env: dict, port: int, conf: bool) -> subprocess.Popen:
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        *(["-c", "python:web.gunicorn_conf"] if conf else []),
        target,
    ]
    log = open(Path(env["COACHUP_DATA_DIR"]) / "gunicorn.log", "wb")
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn {target} exited; see {log.name}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing-here", timeout=1)
        except urllib.error.HTTPError:
            return proc  # any HTTP answer: a worker is up
        except OSError:
            time.sleep(0.1)
            continue
        return proc
    raise RuntimeError(f"gunicorn {target} did not answer within 60 s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _one(target: str, broker: str, seconds: int, conf: bool, script: Path, database: str) -> dict:
    data_dir = fresh_data_dir(broker)
    port = free_port()
    extra = {"COACHUP_DATABASE_URL": database} if database else {}
    proc = _serve(target, bench_env(broker, data_dir, **extra), port, conf)
    try:
        url = f"http://127.0.0.1:{port}/assessments/run"
        # warm both workers (imports, connections) before measuring
        subprocess.run(["wrk", "-t1", "-c4", "-d2s", "-s", str(script), url], capture_output=True, check=True)
        out = subprocess.run(
            ["wrk", "-t1", "-c8", f"-d{seconds}s", "--latency", "-s", str(script), url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        _stop(proc)
    result = parse_wrk(out)
    result["loadavg"] = load_average()
    return result


def api_intake(broker: str, seconds: int = 15, database: str = "", log=print) -> dict:
    """Both servers under the same load; `database` is the project's store URL (empty: SQLite in the data dir)."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    script = Path(tempfile.mkdtemp(prefix="coachup-bench-wrk-")) / "post.lua"
    _lua(script)
    bare = _one("bench.bare_api:app", broker, seconds, False, script, database)
    log(f"api_intake bare: {bare}")
    coachup = _one("web.wsgi:app", broker, seconds, True, script, database)
    log(f"api_intake coachup: {coachup}")
    ratio = coachup["requests_per_s"] / bare["requests_per_s"] if bare["requests_per_s"] else 0.0
    return {
        "baseline": bare,
        "coachup": coachup,
        "ratio": round(ratio, 3),
        "seconds": seconds,
        "gunicorn_workers": 2,
        "connections": 8,
        "store": "postgresql" if database.startswith("postgres") else "sqlite",
        "target_ratio": TARGET_RATIO,
        "target_p99_ms": TARGET_P99_MS,
    }
