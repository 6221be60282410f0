"""Several workers on one host (issue 17, point 6): `COACHUP_WORKER_METRICS_PORT=auto` gives each its own
metrics endpoint, announced in its log and registered for Prometheus (`<metrics dir>/targets/`).

Real parts: two real worker processes started together on a private Redis, a port already held by
something else at the base, real scrapes of both endpoints.
"""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from tests.conftest import TEST_HASH_SECRET
from tests.support.services import PrivateRedis
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


@pytest.mark.drill  # two real worker processes; ~15 s on a loaded machine
def test_two_workers_with_an_auto_port_each_serve_announce_and_register_their_own(tmp_path):
    redis = PrivateRedis()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))  # something else already listens on the base port
    taken.listen()
    base = taken.getsockname()[1]
    env = {
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_ENV": "test",
        "COACHUP_BROKER_URL": redis.url,
        "COACHUP_WORKER_METRICS_PORT": f"auto:{base}",
        "COACHUP_WORKER_METRICS_HOST": "127.0.0.1",
        "COACHUP_QUEUE_DEPTH_INTERVAL_S": "0.5",
    }
    # Given two workers started at the same moment on one host with the same `auto` setting
    workers = [WorkerProcess(env, tmp_path / f"w{i}.log", name=f"auto{i}", queues="stt", concurrency=1) for i in (1, 2)]
    targets = tmp_path / "prometheus" / "targets"
    try:
        for worker in workers:
            worker.wait_ready()
        # then each announces its own port, none the taken base
        announced = [worker.events("metrics_listening") for worker in workers]
        assert [len(a) for a in announced] == [1, 1], announced
        ports = [a[0]["port"] for a in announced]
        assert len(set(ports)) == 2 and all(base < port < base + 64 for port in ports), (base, ports)
        assert all(a[0]["auto"] is True and a[0]["url"].endswith(f":{a[0]['port']}/metrics") for a in announced)
        # and each endpoint serves its own worker's liveness gauges
        for port in ports:
            wait_until(
                lambda port=port: "coachup_worker_broker_connected{" in _scrape(port) and " 1.0" in _scrape(port),
                timeout=15,
                what=f"the worker on {port} to report its heartbeat",
            )
        # and each is registered where Prometheus's file_sd_configs finds it
        registered = {
            path.name: json.loads(path.read_text())[0]["targets"] for path in sorted(targets.glob("worker-*.json"))
        }
        assert registered == {f"worker-{port}.json": [f"127.0.0.1:{port}"] for port in ports}
    finally:
        for worker in workers:
            worker.stop(timeout=20)
        taken.close()
        redis.close()
    # a worker that stopped takes its registration with it
    assert list(targets.glob("worker-*.json")) == []


def test_auto_reads_its_base_and_a_malformed_one_is_refused():
    from coachup.settings import SettingsError, load_settings

    auto = load_settings({"COACHUP_WORKER_METRICS_PORT": "auto"})
    assert (auto.worker_metrics_port, auto.worker_metrics_auto) == (9540, True)
    based = load_settings({"COACHUP_WORKER_METRICS_PORT": "auto:9600"})
    assert (based.worker_metrics_port, based.worker_metrics_auto) == (9600, True)
    assert load_settings({"COACHUP_WORKER_METRICS_PORT": "9541"}).worker_metrics_auto is False
    with pytest.raises(SettingsError, match="COACHUP_WORKER_METRICS_PORT"):
        load_settings({"COACHUP_WORKER_METRICS_PORT": "auto:high"})


def _held_range(span: int) -> tuple[int, list[socket.socket]]:
    """`span` consecutive loopback ports, each held by a listening socket (something else serves them)."""
    for _ in range(50):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
        probe.close()
        if base + span > 65000:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(base, base + span):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
                sock.listen()
            return base, held
        except OSError:
            for sock in held:
                sock.close()
    raise AssertionError("no free range of ports")


@pytest.mark.drill  # a real worker process; ~8 s
def test_an_auto_worker_with_every_port_taken_serves_nothing_says_so_and_leaves_the_base_directory_alone(tmp_path):
    from coachup.settings import AUTO_PORT_SPAN

    redis = PrivateRedis()
    base, held = _held_range(AUTO_PORT_SPAN)
    # Given the base port's worker directory (another live worker's metrics) and every port of the range taken
    owned = tmp_path / "prometheus" / f"worker-{base}"
    owned.mkdir(parents=True)
    (owned / "counter_4242.db").write_bytes(b"another worker's counters")
    env = {
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
        "COACHUP_ENV": "test",
        "COACHUP_BROKER_URL": redis.url,
        "COACHUP_WORKER_METRICS_PORT": f"auto:{base}",
        "COACHUP_WORKER_METRICS_HOST": "127.0.0.1",
    }
    worker = WorkerProcess(env, tmp_path / "w.log", name="nofree", queues="stt", concurrency=1)
    try:
        worker.wait_ready()
        # then it logs why it serves no metrics, and the other worker's files are untouched
        wait_until(lambda: worker.events("metrics_server_error"), timeout=10, what="the error logged")
        error = worker.events("metrics_server_error")[0]["error"]
        assert error["type"] == "NoFreePort" and str(base) in error["message"]
        assert worker.events("metrics_listening") == []
        assert (owned / "counter_4242.db").read_bytes() == b"another worker's counters"
    finally:
        worker.stop(timeout=20)
        for sock in held:
            sock.close()
        redis.close()
