"""A tiny real benchmark: `bench.suite` runs task throughput (bare Celery vs the instrumented app, real worker
processes, on a private Redis and on the embedded broker) and assessment throughput (real assessment jobs
through a real worker) for a few dozen messages, and the table and ratios it prints and writes are checked
against that run, not against the committed `bench/results.json`. Speed is not judged here (`make bench`)."""

from __future__ import annotations

import calendar
import json
import os
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TASKS, JOBS = 40, 3

pytestmark = pytest.mark.drill  # about a minute on two loaded cores: five worker processes start and drain


@pytest.fixture
def tiny_run(tmp_path, capsys):
    from bench import suite
    from tests.support.services import PrivateRedis

    out = tmp_path / "results.json"
    redis = PrivateRedis()  # every benchmark flushes its database: never the machine's Redis
    started = time.time()
    environ = dict(os.environ)  # the suite points this process at its broker: every later test needs it back
    try:
        code = suite.main(
            [
                "--broker",
                redis.url,
                "--only",
                "task_throughput,assessment_throughput",
                "--tasks",
                str(TASKS),
                "--rounds",
                "1",
                "--jobs",
                str(JOBS),
                "--output",
                str(out),
                "--no-plot",
            ]
        )
    finally:
        redis.close()
        os.environ.clear()
        os.environ.update(environ)
    return code, json.loads(out.read_text()), capsys.readouterr().out, started


def _row(printed: str, label: str) -> list[str]:
    """The cells of the printed table's row that starts with `label` (columns are 2+ spaces apart)."""
    (line,) = [line for line in printed.splitlines() if line.startswith(label)]
    return re.split(r"\s{2,}", line.strip())


def test_a_tiny_run_prints_and_writes_the_table_and_ratios_of_that_run(tiny_run):
    from bench.suite import table, targets_met

    code, results, printed, started = tiny_run
    # the file is this run's: its start time, its sizes (the committed file has 3000 tasks and 200 jobs)
    assert calendar.timegm(time.strptime(results["started_at"], "%Y-%m-%dT%H:%M:%SZ")) >= int(started) - 1
    tp, assessed = results["task_throughput"], results["assessment_throughput"]
    assert (tp["tasks"], tp["rounds"], assessed["jobs"]) == (TASKS, 1, JOBS)
    committed = json.loads((ROOT / "bench" / "results.json").read_text())
    assert committed["task_throughput"]["tasks"] != TASKS
    # only what ran is in the file and the table
    assert set(results) & {"api_intake", "latency", "scaling", "operations"} == set()

    for broker in ("redis", "embedded"):
        r = tp[broker]
        # a worker drained every message: rates and CPU are measured, positive and finite
        assert r["baseline"] > 0 and r["coachup"] > 0, r
        assert 0 < r["cpu_ms_per_task"]["baseline"] < 10_000 and 0 < r["cpu_ms_per_task"]["coachup"] < 10_000
        # the ratio is the instrumented rate over the bare one (both rounded to 0.1 task/s in the file)
        assert r["ratio"] == pytest.approx(r["coachup"] / r["baseline"], rel=0.01, abs=0.002), r
        assert _row(printed, f"task throughput, {broker} (tasks/s)")[1:] == [
            str(r["baseline"]),
            str(r["coachup"]),
            str(r["ratio"]),
        ]
        cpu = r["cpu_ms_per_task"]
        assert r["cpu_ratio"] == pytest.approx(cpu["coachup"] / cpu["baseline"], rel=0.01, abs=0.002), r
    assert tp["ratio"] == min(tp["redis"]["ratio"], tp["embedded"]["ratio"])
    assert tp["cpu_ratio"] == tp["redis"]["cpu_ratio"]
    # the default deployment (instances per core, -c 1) against bare Celery -c <cores>, both drained every message
    dep = tp["deployment"]["redis"]
    assert dep["baseline"] > 0 and dep["coachup"] > 0, dep
    assert dep["ratio"] == pytest.approx(dep["coachup"] / dep["baseline"], rel=0.01, abs=0.002), dep
    # every assessment job ended done (the benchmark raises otherwise) at a measured rate
    assert assessed["jobs_per_s"] > 0 and assessed["cpu_ms_per_job"] > 0
    assert _row(printed, "assessment jobs/s (1 process)")[1:] == [str(assessed["jobs_per_s"])]
    # the printed table is the one rendered from the written file, and the exit code follows the targets
    assert table(results) in printed
    assert code == (0 if targets_met(results) else 1)
