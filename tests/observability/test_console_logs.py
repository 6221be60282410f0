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
