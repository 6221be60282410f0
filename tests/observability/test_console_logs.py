"""The dev console format (issue 17, point 5): on a terminal in dev one human line per event, prefixed by
its process; JSON everywhere else, and whenever COACHUP_LOG_FORMAT says so."""

from __future__ import annotations

import io
import json
import logging
import os
import pty

import pytest

from coachup.logs import configure_logging, log_event, resolve_format
from coachup.settings import SettingsError, load_settings


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_dev_on_a_pseudo_terminal_logs_console_lines_with_the_process(restore_root):
    master, slave = pty.openpty()
    with os.fdopen(slave, "w", buffering=1) as tty:
        configure_logging("worker", "dev", stream=tty)
        log_event(logging.getLogger("coachup.worker"), "task_start", task="stt.transcribe", attempt=1)
        line = os.read(master, 4096).decode().strip()
    os.close(master)
    assert f" worker[{os.getpid()}] info  task_start " in line
    assert "task=stt.transcribe" in line and "attempt=1" in line
    assert not line.startswith("{")


def test_json_off_a_terminal_outside_dev_or_when_asked(restore_root):
    buffer = io.StringIO()
    configure_logging("api", "dev", stream=buffer)  # not a terminal
    log_event(logging.getLogger("coachup.api"), "hello", n=1)
    assert json.loads(buffer.getvalue())["event"] == "hello"
    assert resolve_format("", "production", _Tty()) == "json"
    assert resolve_format("json", "dev", _Tty()) == "json"
    assert resolve_format("console", "production", io.StringIO()) == "console"


def test_log_format_is_checked_at_settings_load():
    assert load_settings({"COACHUP_LOG_FORMAT": "Console"}).log_format == "console"
    with pytest.raises(SettingsError, match="COACHUP_LOG_FORMAT"):
        load_settings({"COACHUP_LOG_FORMAT": "xml"})


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _read_pty(master: int, into: list[bytes], stop) -> None:
    while not stop.is_set():
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed
            return
        if not chunk:
            return
        into.append(chunk)


@pytest.mark.drill  # a whole `coachup run` (broker, API, worker, beat, Flower) on a terminal; ~30 s
def test_coachup_run_on_a_terminal_prefixes_every_line_with_its_process_and_drops_the_known_noise(tmp_path):
    import re
    import signal
    import subprocess
    import sys
    import threading
    from pathlib import Path

    from tests.support.services import free_port
    from tests.support.wait import wait_until

    env = {k: v for k, v in os.environ.items() if not k.startswith(("COACHUP_", "FLOWER_", "AI_PROVIDER"))}
    env.update(
        COACHUP_API_PORT=str(free_port()),
        COACHUP_FLOWER_PORT=str(free_port()),
        COACHUP_DATA_DIR=str(tmp_path / "var"),
    )  # no COACHUP_WORKER_METRICS_PORT: `coachup run` gives its worker `auto`
    master, slave = pty.openpty()
    chunks: list[bytes] = []
    stop = threading.Event()
    reader = threading.Thread(target=_read_pty, args=(master, chunks, stop), daemon=True)
    reader.start()
    # Given `coachup run` in dev with its output on a terminal (what `make run` in a shell does)
    proc = subprocess.Popen(
        [sys.executable, "-m", "coachup.cli", "run"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    os.close(slave)

    def text() -> str:
        return b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")

    try:
        up = (
            ("worker | ", " ready."),
            ("beat   | ", "scheduler_leader"),
            ("flower | ", "Visit me"),
            ("api    | ", "Listening at"),
        )
        from coachup.cli.supervisor import worker_instances

        if worker_instances() > 1:  # one worker instance per core: the second one is `worker2`
            up += (("worker2 | ", " ready."),)

        def all_up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"coachup run exited ({proc.returncode}):\n{text()[-3000:]}")
            lines = text().splitlines()
            return all(any(line.startswith(p) and what in line for line in lines) for p, what in up)

        wait_until(all_up, timeout=120, interval=0.5, what="every child of coachup run to start")
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(timeout=60)
        finally:
            stop.set()
            reader.join(timeout=5)
            os.close(master)
    lines = [line for line in text().splitlines() if line.strip()]
    # Then every line says which process wrote it: the supervisor's own lines, or a child's with its name
    unprefixed = [line for line in lines if not re.match(r"^(coachup: |(api|worker\d*|beat|flower) *\| )", line)]
    assert unprefixed == [], unprefixed
    # gunicorn's own lines are console lines of the API process, not gunicorn's plain text
    listening = next(line for line in lines if "Listening at" in line)
    assert re.match(r"^api    \| \d\d:\d\d:\d\d\.\d{3} api\[\d+\] info  log msg=Listening at: ", listening), listening
    # beat's own log lines name beat
    assert re.search(r"^beat   \| \S+ beat\[\d+\] info  scheduler_leader", text(), re.M)
    # the worker took a free metrics port from 9540 up and said which (a second `make run` would take the next)
    assert re.search(r"^worker \| \S+ worker\[\d+\] info  metrics_listening port=\d+ auto=true ", text(), re.M)
    # the broker and store are announced once, not once more by each child
    assert len([line for line in lines if line.startswith("coachup: env dev;")]) == 1
    # and the known harmless warnings are gone: Celery's superuser warning (this suite runs as root in its
    # container) and Flower's start-up "Inspect method ... failed" before the worker is up
    if os.geteuid() == 0:
        assert "superuser privileges" not in text()
    assert "Inspect method" not in text()


def test_gunicorn_s_own_lines_are_json_lines_of_the_api_off_a_terminal(tmp_path):
    from tests.conftest import TEST_HASH_SECRET
    from tests.support.api_server import ApiServer

    # Given the real `coachup api` (gunicorn) writing into a file, as in production
    env = {"COACHUP_ENV": "test", "COACHUP_DATA_DIR": str(tmp_path), "COACHUP_HASH_SECRET": TEST_HASH_SECRET}
    server = ApiServer(env, tmp_path / "api.log", workers=1).wait_ready()
    server.stop()
    # Then gunicorn's start-up lines are JSON records of service `api`, like the API's own lines
    gunicorn = [e for e in server.events("log") if str(e.get("msg", "")).startswith(("Listening at", "Booting worker"))]
    assert len(gunicorn) >= 2 and {e["service"] for e in gunicorn} == {"api"}, gunicorn
    # and nothing but the CLI's banner on stderr is plain text
    plain = [line for line in server.log_text().splitlines() if line.strip() and not line.startswith("{")]
    assert all(line.startswith("coachup: ") for line in plain), plain


def test_flower_start_up_no_reply_is_dropped_but_a_connection_error_or_a_later_no_reply_is_kept(monkeypatch):
    from coachup import logs

    no_reply = logging.LogRecord(
        "flower.inspector", logging.WARNING, "", 0, "Inspect method %s failed", ("stats",), None
    )
    down = logging.LogRecord(
        "flower.inspector", logging.WARNING, "", 0, "Inspect method %s failed: %s", ("stats", "refused"), None
    )
    starting = logs._FlowerStartupNoReply()
    assert starting.filter(no_reply) is False  # the workers start with Flower: nobody has answered yet
    assert starting.filter(down) is True  # the broker is unreachable: always shown
    monkeypatch.setattr(logs, "FLOWER_STARTUP_S", 0.0)
    assert logs._FlowerStartupNoReply().filter(no_reply) is True  # after start-up: the workers are gone


def test_coachup_worker_logging_json_writes_no_celery_banner_into_its_json_stdout(tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import TEST_HASH_SECRET
    from tests.support.services import PrivateRedis
    from tests.support.wait import wait_until

    redis = PrivateRedis()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COACHUP_", "FLOWER_"))}
    env.update(
        COACHUP_ENV="test",
        COACHUP_HASH_SECRET=TEST_HASH_SECRET,
        COACHUP_BROKER_URL=redis.url,
        COACHUP_DATA_DIR=str(tmp_path),
        COACHUP_WORKER_METRICS_PORT="0",
    )
    out_path = tmp_path / "worker.out"
    # Given `coachup worker` whose stdout is a file (production: a log shipper reads JSON lines)
    with open(out_path, "wb") as out, open(tmp_path / "worker.err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coachup.cli", "worker", "-Q", "stt", "-c", "1"],
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        try:
            wait_until(lambda: " ready." in out_path.read_text(), timeout=60, what="the worker ready")
            text = out_path.read_text()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
            redis.close()
    # Then its stdout up to "ready" is JSON lines only: no Celery banner (`-q`) between them
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines and all(line.startswith("{") for line in lines), lines[:20]
    assert any(json.loads(line).get("msg", "").endswith(" ready.") for line in lines)
