"""Liveness (issue 17, point 3): the worker's heartbeat and broker-connected gauges, a depth sample that is
never served stale, the scheduler's last sweep, and beat's probe.

Real parts: a private Redis the test stops mid-way (a broker outage), a SQLite store, the real sweep task
run in-process, the real `coachup probe beat` command.
"""

from __future__ import annotations

import math
import os
import time

import pytest
from click.testing import CliRunner

from coachup.settings import load_settings
from tests.conftest import TEST_HASH_SECRET
from tests.support.services import PrivateRedis


def _env(tmp_path, **extra) -> dict:
    return {
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_ENV": "test",
        "COACHUP_WORKER_METRICS_PORT": "0",
        **extra,
    }


def test_a_broker_outage_turns_the_worker_disconnected_and_blanks_the_depths(tmp_path):
    from workers import create_celery
    from workers.metrics_host import metrics_for, sample_once, worker_host

    redis = PrivateRedis()
    app = create_celery(load_settings(_env(tmp_path, COACHUP_BROKER_URL=redis.url)))
    registry = metrics_for(app).registry
    value = registry.get_sample_value
    host = {"host": worker_host()}
    try:
        # Given a worker that sampled its broker once
        before = time.time()
        sample_once(app)
        assert value("coachup_worker_broker_connected", host) == 1
        assert value("coachup_queue_depth", {"queue": "assessments"}) == 0
        sampled_at = value("coachup_queue_depth_sample_timestamp_seconds", host)
        assert before <= sampled_at <= time.time()
        assert value("coachup_worker_heartbeat_timestamp_seconds", host) >= before
    finally:
        redis.close()  # When the broker goes away
    with pytest.raises(Exception):  # noqa: B017 (whatever the client raises: the sampler logs it and goes on)
        sample_once(app)
    # Then the next sample says so: disconnected, still beating, and no depth served as fresh
    assert value("coachup_worker_broker_connected", host) == 0
    assert value("coachup_worker_heartbeat_timestamp_seconds", host) >= sampled_at
    assert math.isnan(value("coachup_queue_depth", {"queue": "assessments"}))
    assert math.isnan(value("coachup_queue_depth", {"queue": "deadletter"}))
    assert value("coachup_queue_depth_sample_timestamp_seconds", host) == sampled_at  # the age keeps growing


def test_the_sweep_publishes_its_last_success(tmp_path):
    from workers import create_celery
    from workers.metrics_host import metrics_for, worker_host

    redis = PrivateRedis()
    try:
        app = create_celery(load_settings(_env(tmp_path, COACHUP_BROKER_URL=redis.url)))
        before = time.time()
        result = app.tasks["interactions.sweep"].apply()
        assert result.successful(), result.traceback
        last = metrics_for(app).registry.get_sample_value(
            "coachup_scheduler_last_sweep_timestamp_seconds", {"host": worker_host()}
        )
        assert last is not None and before <= last <= time.time()
    finally:
        redis.close()


def test_probe_beat_fails_without_a_recent_pulse(tmp_path):
    from coachup.cli import main
    from coachup.cli.beat_probe import install_pulse, max_pulse_age_s, pulse_path

    env = _env(tmp_path, COACHUP_IDLE_SWEEP_S="10")
    settings = load_settings(env)
    never = CliRunner().invoke(main, ["probe", "beat"], env=env)
    assert never.exit_code == 1 and "has not published yet" in never.stderr

    install_pulse(settings)  # what `coachup beat` does before it starts ticking
    fresh = CliRunner().invoke(main, ["probe", "beat"], env=env)
    assert fresh.exit_code == 0, fresh.output

    old = time.time() - max_pulse_age_s(settings) - 5
    os.utime(pulse_path(settings), (old, old))
    stalled = CliRunner().invoke(main, ["probe", "beat"], env=env)
    assert stalled.exit_code == 1 and "beat last published" in stalled.stderr


def test_probe_beat_reads_the_deployment_named_by_env_file(tmp_path, monkeypatch):
    from coachup.cli import main
    from coachup.cli.beat_probe import install_pulse

    # Given beat's pulse under a deployment's data dir, named only in that deployment's env file
    deployment = tmp_path / "deployment"
    install_pulse(load_settings(_env(deployment)))
    env_file = tmp_path / "coachup.env"
    env_file.write_text(f"COACHUP_DATA_DIR={deployment}\nCOACHUP_ENV=test\n")
    # When an operator probes from a shell whose own (default) data dir has no pulse
    monkeypatch.chdir(tmp_path)
    probed = CliRunner().invoke(
        main, ["--env-file", str(env_file), "probe", "beat"], env={"COACHUP_DATA_DIR": "", "COACHUP_ENV": ""}
    )
    # Then the probe reads the deployment's pulse
    assert probed.exit_code == 0 and "beat published" in probed.stdout, probed.output


def test_beat_touches_its_pulse_when_it_publishes(tmp_path):
    from celery.signals import after_task_publish

    from coachup.cli.beat_probe import install_pulse, pulse_age_s

    settings = load_settings(_env(tmp_path))
    install_pulse(settings)
    old = time.time() - 600
    os.utime(tmp_path / "beat" / "pulse", (old, old))
    after_task_publish.send(sender="interactions.sweep", headers={}, body=(), exchange="", routing_key="")
    assert pulse_age_s(settings) < 5


@pytest.mark.drill  # a real worker process; ~10 s
def test_a_real_worker_whose_broker_dies_reports_disconnected_within_one_sample_interval(tmp_path):
    import urllib.request

    from tests.support.services import free_port
    from tests.support.wait import wait_until
    from tests.support.worker import WorkerProcess
    from workers.metrics_host import worker_host

    redis, port = PrivateRedis(), free_port()
    env = _env(
        tmp_path,
        COACHUP_BROKER_URL=redis.url,
        COACHUP_WORKER_METRICS_PORT=str(port),
        COACHUP_WORKER_METRICS_HOST="127.0.0.1",
        COACHUP_QUEUE_DEPTH_INTERVAL_S="0.5",
    )
    worker = WorkerProcess(env, tmp_path / "worker.log", name="liveness", queues="stt", concurrency=1)
    try:
        worker.wait_ready()
        connected = f'coachup_worker_broker_connected{{host="{worker_host()}"}}'

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                return resp.read().decode()

        wait_until(lambda: f"{connected} 1.0" in scrape(), timeout=15, what="the worker connected")
        redis.close()  # the broker goes away; the worker's endpoint keeps answering
        wait_until(lambda: f"{connected} 0.0" in scrape(), timeout=5, what="the worker reporting disconnected")
        assert 'coachup_queue_depth{queue="stt"} NaN' in scrape()
        # the outage is in the log once, without Celery's deprecation note that came with every connection loss
        wait_until(lambda: "Connection to broker lost" in worker.log_text(), timeout=10, what="the outage logged")
        assert "In Celery 5.1 we introduced" not in worker.log_text()
    finally:
        worker.kill()
        redis.close()
