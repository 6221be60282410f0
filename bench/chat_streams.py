"""Chat streams beside intake: can the API hold 200 open `GET /chat/stream` responses on this 2-core host while
`POST /messages/ingest` keeps serving, and what does each server model cost?

The API runs as `coachup api` (gunicorn, 2 worker processes) with the offline chat model paced like a real
provider: it "thinks" `--provider-ttft-ms` before its first token, then streams a token every `--token-ms`.
Time to first token is measured at the client (request sent → first reply chunk read) and reported as the
time *added* over the provider's own first-token time. Intake is `wrk` posting one new turn per request
(a new session each time). Phases:

1. gthread (the chosen model): intake alone; one stream at a time (the unloaded added TTFT); then
   `--streams` streams held open (each client slot reopens a stream when one ends) while wrk runs again; then
   intake alone again. The ratio's baseline is the mean of the two runs alone (`_mean_of`): a shared host
   drifts by more than the effect between two runs minutes apart.
2. split (the Kubernetes shape, deploy/k8s/ingress.yaml): intake alone on one `coachup api`, then with the
   streams held open on a second `coachup api` of their own, then alone again, both on this host (`--no-split`
   skips it).
3. sync x2 (the old model): intake alone; then intake while 2 streams are open (`--no-sync` skips it; the
   `make bench` suite runs phases 1 and 2, as its `chat_streams` object and that object's `split`).

Target 2 of the performance issue (`targets_met`): `intake_ratio_with_streams` (intake with the streams open
over intake alone) >= 0.8; `added_ttft_p50_ms` / `added_ttft_p99_ms` (the streams' first token over the
provider's own, while intake runs) <= 5 / <= 25 ms.

    .venv/bin/python -m bench.chat_streams                 # ~2 minutes; prints JSON, --out writes it
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from bench.api import parse_wrk
from bench.common import ROOT, free_port, load_average

__all__ = ["run", "percentile", "targets_met"]

PROMPT = "Um, I want to sound calmer when I present the quarterly numbers to my team, so I practise here."


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _serve(
    worker_class: str, port: int, data_dir: Path, ttft_ms: int, token_ms: int, database: str
) -> subprocess.Popen:
    env = {
        **os.environ,
        **({"COACHUP_DATABASE_URL": database} if database else {}),
        "COACHUP_DATA_DIR": str(data_dir),
        "COACHUP_API_PORT": str(port),
        "COACHUP_LOG_LEVEL": "WARNING",
        "CHAT_OFFLINE_FIRST_TOKEN_MS": str(ttft_ms),
        "CHAT_OFFLINE_TOKEN_MS": str(token_ms),
        "CHAT_STREAM_MAX_S": "600",
    }
    if worker_class == "gthread":
        argv = [sys.executable, "-m", "coachup.cli", "api", "--workers", "2"]
    else:  # the old model: gunicorn's default sync workers, same hooks
        argv = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}"]
        argv += ["-c", "python:web.gunicorn_conf", "web.wsgi:app"]
    log = open(data_dir / f"api-{worker_class}.log", "wb")
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"API exited; see {log.name}") from None
            time.sleep(0.2)
    raise RuntimeError("API did not answer within 60 s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _wrk(port: int, seconds: int, script: Path) -> dict:
    _lua(script)  # new sessions for this run
    url = f"http://127.0.0.1:{port}/messages/ingest"
    out = subprocess.run(
        ["wrk", "-t1", "-c8", f"-d{seconds}s", "--timeout", "10s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = parse_wrk(out)
    result["loadavg"] = load_average()
    return result


def _lua(path: Path) -> None:
    """The intake script, written afresh before each wrk run (`_wrk`) with a tag of its own, so no run re-sends
    an earlier run's sessions (wrk's unseeded `math.random` gave every run the same tag: a deduplicated ingest)."""
    body = json.dumps({"sessionId": "SESSION", "messageId": "m1", "role": "user", "content": PROMPT})
    head, tail = body.split('"SESSION"')
    path.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local n = 0\nlocal tag = "{uuid.uuid4().hex[:12]}"\n'
        "request = function()\n  n = n + 1\n"
        f"  local body = {json.dumps(head)} .. '\"chat-bench-' .. tag .. '-' .. n .. '\"' .. {json.dumps(tail)}\n"
        "  return wrk.format(nil, nil, nil, body)\nend\n"
    )


async def _one_stream(port: int, stats: dict) -> None:
    """Open one stream, time its first reply chunk, read it to [DONE]."""
    from urllib.parse import quote

    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        stats["errors"] += 1
        return
    # HTTP/1.0: no chunked framing between the SSE lines; the server closes the connection at the end
    writer.write(f"GET /chat/stream?prompt={quote(PROMPT)} HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    stats["open"] += 1
    status = (await reader.readline()).split(b" ")[1:2]
    named, first = False, None
    try:
        if status != [b"200"]:
            stats["refused"] += 1
            return
        while True:
            line = await reader.readline()
            if not line:
                stats["errors"] += 1
                return
            line = line.rstrip(b"\r\n")
            if not line:
                named = False  # the end of an event (or of the headers)
            elif line.startswith(b"event:"):
                named = True
            elif line.startswith(b"data: ") and not named:
                if line == b"data: [DONE]":
                    stats["completed"] += 1
                    return
                if first is None:
                    first = time.monotonic() - started
                    stats["ttft_s"].append(first)
    finally:
        stats["open"] -= 1
        writer.close()


async def _hold(port: int, slots: int, stop: threading.Event, stats: dict) -> None:
    async def slot(i: int) -> None:
        await asyncio.sleep(i * 0.01)  # open the streams over ~2 s, as users would, not in one burst
        while not stop.is_set():
            await _one_stream(port, stats)

    await asyncio.gather(*(slot(i) for i in range(slots)))


def _streams_in_thread(port: int, slots: int, stop: threading.Event) -> tuple[threading.Thread, dict]:
    stats = {"open": 0, "completed": 0, "refused": 0, "errors": 0, "ttft_s": []}
    thread = threading.Thread(target=lambda: asyncio.run(_hold(port, slots, stop, stats)), daemon=True)
    thread.start()
    return thread, stats


def _added(stats: dict, provider_s: float) -> dict:
    added = [(t - provider_s) * 1000 for t in stats["ttft_s"]]
    return {
        "streams_measured": len(added),
        "added_ttft_p50_ms": round(percentile(added, 50), 1),
        "added_ttft_p99_ms": round(percentile(added, 99), 1),
        "added_ttft_mean_ms": round(statistics.fmean(added), 1) if added else None,
        "completed": stats["completed"],
        "refused_503": stats["refused"],
        "errors": stats["errors"],
    }


TARGET_INTAKE_RATIO = 0.80
TARGET_ADDED_TTFT_P50_MS = 5.0
TARGET_ADDED_TTFT_P99_MS = 25.0


def run(
    streams: int = 200,
    seconds: int = 15,
    ttft_ms: int = 500,
    token_ms: int = 150,
    database: str = "",
    log=print,
    *,
    one_stream_s: float | None = None,
    compare_sync: bool = True,
    split: bool = True,
) -> dict:
    """Every phase; `database` is the store URL (empty: SQLite in a temporary data dir).

    `one_stream_s`: how long streams are timed one at a time (default: about ten streams); `compare_sync`: also
    run the old sync model (`make bench` leaves it out: it only documents why the model changed); `split`: also
    the Kubernetes shape, streams on API processes of their own (`_split`, the `split` object)."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="coachup-bench-chat-"))
    script = work / "ingest.lua"
    _lua(script)
    provider_s = ttft_ms / 1000
    out: dict = {"streams": streams, "seconds": seconds, "provider_ttft_ms": ttft_ms, "token_ms": token_ms}
    out["store"] = "postgresql" if database.startswith("postgres") else "sqlite"
    # ---- gthread: the chosen model ----
    port = free_port()
    (work / "gthread").mkdir()
    proc = _serve("gthread", port, work / "gthread", ttft_ms, token_ms, database)
    try:
        _wrk(port, 2, script)  # warm up both workers
        out["gthread_intake_alone"] = _wrk(port, seconds, script)
        log(f"gthread intake alone: {out['gthread_intake_alone']}")
        stop = threading.Event()
        thread, stats = _streams_in_thread(port, 1, stop)
        # ~10 sequential streams, unloaded
        time.sleep(one_stream_s if one_stream_s is not None else max(5.0, 10 * (provider_s + 45 * token_ms / 1000)))
        stop.set()
        thread.join(60)
        out["gthread_one_stream"] = _added(stats, provider_s)
        log(f"gthread one stream at a time: {out['gthread_one_stream']}")
        with_streams, added = _beside_streams(port, port, streams, seconds, script, provider_s)
        out["gthread_intake_with_streams"], out["gthread_streams"] = with_streams, added
        after = _wrk(port, seconds, script)  # intake alone again: the baseline is the mean of before and after
        log(f"gthread with {streams} streams: {with_streams} {added}")
    finally:
        _stop(proc)
    out["gthread_intake_alone"] = _mean_of(out["gthread_intake_alone"], after)
    out["targets"] = {
        "intake_ratio_with_streams": TARGET_INTAKE_RATIO,
        "added_ttft_p50_ms": TARGET_ADDED_TTFT_P50_MS,
        "added_ttft_p99_ms": TARGET_ADDED_TTFT_P99_MS,
    }
    _judge(out, out["gthread_intake_alone"], with_streams, added)
    if split:
        out["split"] = _split(work, script, streams, seconds, ttft_ms, token_ms, database, log)
    if not compare_sync:
        shutil.rmtree(work, ignore_errors=True)
        return out
    # ---- sync x2: the old model ----
    port = free_port()
    (work / "sync").mkdir()
    proc = _serve("sync", port, work / "sync", ttft_ms, token_ms, database)
    try:
        _wrk(port, 2, script)
        out["sync_intake_alone"] = _wrk(port, seconds, script)
        log(f"sync intake alone: {out['sync_intake_alone']}")
        stop = threading.Event()
        thread, stats = _streams_in_thread(port, 2, stop)
        time.sleep(1.0)
        out["sync_intake_with_2_streams"] = _wrk(port, seconds, script)
        stop.set()
        thread.join(120)
        log(f"sync intake with 2 streams: {out['sync_intake_with_2_streams']}")
    finally:
        _stop(proc)
    shutil.rmtree(work, ignore_errors=True)
    return out


def _beside_streams(
    intake_port: int, stream_port: int, streams: int, seconds: int, script: Path, provider_s: float
) -> tuple[dict, dict]:
    """wrk on the intake server while `streams` streams are held open on the stream server (the same server, or
    one of its own): the intake's result, with the streams open at its start and end, and the streams' added
    time to first token."""
    stop = threading.Event()
    thread, stats = _streams_in_thread(stream_port, streams, stop)
    deadline = time.monotonic() + 30
    while stats["open"] < streams and time.monotonic() < deadline:
        time.sleep(0.1)
    held_at_start = stats["open"]
    intake = _wrk(intake_port, seconds, script)
    intake["streams_open_at_start"] = held_at_start
    intake["streams_open_at_end"] = stats["open"]
    stop.set()
    thread.join(120)
    return intake, _added(stats, provider_s)


def _judge(out: dict, alone: dict, with_streams: dict, added: dict) -> None:
    """Target 2's figures of one shape, into `out`: the intake ratio, the added time to first token, `met`."""
    a, b = alone["requests_per_s"], with_streams["requests_per_s"]
    out["intake_ratio_with_streams"] = round(b / a, 3) if a else None
    out["added_ttft_p50_ms"] = added["added_ttft_p50_ms"]
    out["added_ttft_p99_ms"] = added["added_ttft_p99_ms"]
    out["met"] = targets_met(out)


def _mean_of(before: dict, after: dict) -> dict:
    """Intake alone, measured before and after the streams against the drift of a shared host: req/s is their
    mean (the ratio's baseline), both kept in `before_after_requests_per_s`; latency is the run after's."""
    mean = round((before["requests_per_s"] + after["requests_per_s"]) / 2, 2)
    return {
        **after,
        "requests_per_s": mean,
        "before_after_requests_per_s": [before["requests_per_s"], after["requests_per_s"]],
    }


def _split(
    work: Path, script: Path, streams: int, seconds: int, ttft_ms: int, token_ms: int, database: str, log
) -> dict:
    """The Kubernetes shape (deploy/k8s/ingress.yaml): `/chat/stream` served by API processes of their own
    (`coachup-api-stream`), everything else by `coachup-api`; here both on this one host, each a `coachup api`
    with its default 2 workers, wrk posting to the intake server and the streams opened on the stream server, as
    the ingress's path rule would send them."""
    provider_s = ttft_ms / 1000
    out: dict = {"intake_workers": 2, "stream_workers": 2}
    intake_port, stream_port = free_port(), free_port()
    (work / "split-intake").mkdir()
    (work / "split-streams").mkdir()
    intake = _serve("gthread", intake_port, work / "split-intake", ttft_ms, token_ms, database)
    try:
        chat = _serve("gthread", stream_port, work / "split-streams", ttft_ms, token_ms, database)
        try:
            _wrk(intake_port, 2, script)
            before = _wrk(intake_port, seconds, script)
            out["intake_with_streams"], out["streams"] = _beside_streams(
                intake_port, stream_port, streams, seconds, script, provider_s
            )
            after = _wrk(intake_port, seconds, script)
        finally:
            _stop(chat)
    finally:
        _stop(intake)
    out["intake_alone"] = _mean_of(before, after)
    _judge(out, out["intake_alone"], out["intake_with_streams"], out["streams"])
    log(f"split, streams on their own API processes: {out}")
    return out


def targets_met(out: dict) -> bool:
    """Target 2 of the performance issue: intake keeps >= 0.8x with the streams open, and the streams' added
    time to first token stays <= 5 ms p50 and <= 25 ms p99."""
    ratio, p50, p99 = out.get("intake_ratio_with_streams"), out.get("added_ttft_p50_ms"), out.get("added_ttft_p99_ms")
    if ratio is None or p50 is None or p99 is None or p50 != p50 or p99 != p99:  # NaN: no stream measured
        return False
    return ratio >= TARGET_INTAKE_RATIO and p50 <= TARGET_ADDED_TTFT_P50_MS and p99 <= TARGET_ADDED_TTFT_P99_MS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--provider-ttft-ms", type=int, default=500)
    parser.add_argument("--token-ms", type=int, default=150)
    parser.add_argument("--database", default="", help="store URL (default: SQLite in a temporary data dir)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    parser.add_argument("--no-sync", action="store_true", help="skip the old sync model's phase")
    parser.add_argument("--no-split", action="store_true", help="skip the streams-on-their-own-processes phase")
    args = parser.parse_args(argv)
    result = run(
        args.streams,
        args.seconds,
        args.provider_ttft_ms,
        args.token_ms,
        args.database,
        compare_sync=not args.no_sync,
        split=not args.no_split,
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
