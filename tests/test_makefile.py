"""`make install` (and so the first `make run`) says what it is doing and shows pip's progress.

The recipe runs for real with a stand-in `python` (PYTHON=...) that records its arguments instead of
creating a venv and installing: the test sees the lines `make` prints and the pip command it runs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# a python that passes the version check, "creates" a venv whose python is itself, and logs every call
FAKE_PYTHON = """#!/bin/sh
echo "$0 $*" >> "{log}"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && chmod +x "$3/bin/python"
fi
exit 0
"""


def test_the_first_install_announces_itself_and_lets_pip_show_progress(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed (apt-get install make)")
    log = tmp_path / "calls.log"
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PYTHON.format(log=log))
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    # Given no venv yet, when `make install` runs
    out = subprocess.run(
        ["make", "--no-print-directory", "install", f"VENV={venv}", f"PYTHON={fake}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    # then it says it is installing and roughly how long that takes, before pip starts
    lines = out.stdout.splitlines()
    announce = next(i for i, line in enumerate(lines) if line.startswith("installing coachup"))
    assert "minutes" in lines[announce] and "silent" not in lines[announce]
    pip = [line for line in log.read_text().splitlines() if " -m pip install " in line]
    assert len(pip) == 1
    assert lines.index(next(line for line in lines if " -m pip install " in line)) > announce
    # and pip is not silenced: it prints each package it collects and downloads as it goes
    args = pip[0].split()
    assert "--quiet" not in args and "-q" not in args and "-qq" not in args
    assert (venv / ".installed").exists()
