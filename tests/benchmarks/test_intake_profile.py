"""`bench.intake_profile` measures the project and both baselines in one process, on one store: each figure must
hold only its own app's work. The fair baseline commits job rows nobody publishes, and the project's relay claims
any pending row, so the tool settles them outside the timed rounds; its output says whether the relay claimed
exactly the project's rows, read back from the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import PrivateRedis

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis():
    server = PrivateRedis()
    yield server
    server.close()


def test_each_figure_holds_only_its_own_apps_publishes(redis):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACHUP_")}
    env["PYTHONPATH"] = str(ROOT)
    argv = [sys.executable, "-m", "bench.intake_profile", "--route", "ingest", "--requests", "60", "--rounds", "3"]
    done = subprocess.run(
        [*argv, "--broker", redis.url], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # the result line; the app's shutdown may log a JSON line after it
    (out,) = [r for r in map(json.loads, done.stdout.strip().splitlines()) if "route" in r]
    assert out["relay_published_only_project_rows"] is True
    assert {"coachup", "fair", "same_work"} <= set(out)
    assert out["cpu_ratio_same_work"] > 0 and out["cpu_ratio_fair"] > 0
    assert out["same_work"]["api_other_threads_ms"] < out["coachup"]["api_other_threads_ms"]
