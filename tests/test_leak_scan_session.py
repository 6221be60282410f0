"""The run's final leak scan (tests/conftest.py `pytest_sessionfinish`) fails a plain pytest run on a hit.

Each case runs pytest in a subprocess, with tests/conftest.py loaded as a plugin, on a throw-away test file
in a directory outside this run's base temp directory (so the planted leak cannot fail this run too).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PLANTED_LOG = """
def test_writes_a_log(tmp_path):
    (tmp_path / "worker.log").write_text('{"event": "x", "sessionId": "%s"}\\n')
"""
PLANTED_KEPT = """
from tests.support.leaks import keep

def test_keeps_a_broker_message():
    keep("broker taps", ['{"headers": {"sessionId": "drill-kept-0001"}}'])
"""
PLANTED_STORE = """
import sqlite3

def test_a_store_with_a_raw_dead_letter(tmp_path):
    conn = sqlite3.connect(tmp_path / "coachup.db")
    conn.execute("CREATE TABLE dead_letters (id TEXT, record TEXT)")
    conn.execute("INSERT INTO dead_letters VALUES (?, ?)", ("j.0", "provider refused: led the migration"))
    conn.commit()
    conn.close()
"""


@pytest.fixture
def outside():
    path = Path(tempfile.mkdtemp(prefix="coachup-leakscan-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _pytest(directory: Path, source: str) -> subprocess.CompletedProcess:
    (directory / "pytest.ini").write_text("[pytest]\n")
    (directory / "test_planted.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q"]
        + ["--basetemp", str(directory / "basetemp"), "--rootdir", str(directory), str(directory)],
        cwd=directory,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_clean_run_passes_and_reports_what_it_scanned(outside):
    proc = _pytest(outside, PLANTED_LOG % "3f9a0c1e")  # a hashed id: no leak
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "leak scan (after every test): 1 log files (1 lines)" in proc.stdout and "0 hits" in proc.stdout


@pytest.mark.parametrize(
    ("source", "where", "needle"),
    [
        (PLANTED_LOG % "drill-7c2e", "log:", "drill-"),
        (PLANTED_KEPT, "broker taps", "drill-"),
        (PLANTED_STORE, "store:", "led the migration"),
    ],
    ids=["log-file", "kept-broker-message", "sqlite-dead-letter"],
)
def test_a_planted_leak_fails_a_run_whose_tests_all_passed(outside, source, where, needle):
    proc = _pytest(outside, source)
    assert "1 passed" in proc.stdout, proc.stdout[-2000:]
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "1 hits" in proc.stdout
    assert f"LEAK in {where}" in proc.stdout and repr(needle) in proc.stdout
