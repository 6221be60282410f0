"""The worker host's metrics plumbing, run by the worker main process (never per task).

- `start(app)` (from `worker_init`, before the pool forks): wipes and enables the multiprocess directory
  `<metrics root>/worker-<port>` so every prefork child writes its own files there.
- `serve(app)` (from `worker_ready`): one Prometheus endpoint per worker host on `COACHUP_WORKER_METRICS_PORT`
  merging every child's files, and the queue-depth sampler thread (one broker round trip per interval).
- `stop()` (from `worker_shutdown`): stops both.

`COACHUP_WORKER_METRICS_PORT=auto` (several workers on one host): `start` binds the endpoint itself, on the first
port from the base that it can bind (the bind is the claim, so two workers starting together never share one),
and only then names and wipes the directory `worker-<port>`. Every served endpoint is announced
(`metrics_listening`) and registered for Prometheus's `file_sd_configs` in `<metrics root>/targets/worker-<port>.json`
(removed at shutdown).

`metrics_for(app)` is the per-process `Metrics`; it is built lazily, after the directory is enabled.
Used by both `celery -A workers worker` and `coachup worker` (the same Celery signals fire for each).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

from coachup.logs import log_event
from coachup.metrics.queue_depth import SNAPSHOT_NAME

__all__ = ["start", "serve", "stop", "metrics_for", "sample_once", "worker_host", "worker_metrics_dir"]

log = logging.getLogger("coachup.worker")
_state: dict = {}
_lock = threading.Lock()


def worker_metrics_dir(settings) -> Path:
    """`<metrics root>/worker-<port>`: one directory per worker instance on a host (an `auto` worker that found
    no free port: its own pid directory, never the base port's, which another live worker owns)."""
    port = 0 if settings.worker_metrics_auto else settings.worker_metrics_port
    return settings.metrics_root / (f"worker-{port}" if port else f"worker-pid{os.getpid()}")


def metrics_for(app):
    """This process's `Metrics` for `app` (children inherit the parent's and re-key their files by pid)."""
    metrics = getattr(app, "_coachup_metrics", None)
    if metrics is None:
        with _lock:
            metrics = getattr(app, "_coachup_metrics", None)
            if metrics is None:
                from coachup.metrics import Metrics

                metrics = Metrics()
                app._coachup_metrics = metrics
    return metrics


class SqsMetricsObserver:
    """Binds the SQS transport's call reports (`coachup.sqs.observe`) to the `coachup_sqs_*` metrics."""

    def __init__(self, metrics_source) -> None:
        self._metrics = metrics_source  # zero-argument callable returning this process's `Metrics`

    def on_call(self, operation: str, seconds: float, ok: bool, count: int = 1) -> None:
        self._metrics().observe_sqs_call(operation, seconds, ok, messages=count)


def start(app) -> Path:
    """Wipe and enable this worker's multiprocess directory; call in the main process before forking."""
    from coachup.metrics import multiproc

    settings = app.coachup.settings
    if settings.worker_metrics_auto and "server" not in _state:
        claimed = _claim_auto_port(settings)
        if claimed is not None:
            port, server, late = claimed
            path = multiproc.enable(settings.metrics_root / f"worker-{port}", wipe=True)
            late.registry = multiproc.collect_registry(path)
            _state.update(dir=path, server=server, auto_port=port)  # announced by serve(), once logging is set up
            return path
    path = multiproc.enable(worker_metrics_dir(settings), wipe=True)
    _state["dir"] = path
    return path


class _Late:
    """A collector whose registry arrives after the endpoint is bound (the port names the directory)."""

    registry = None

    def collect(self):
        return self.registry.collect() if self.registry is not None else []


def _claim_auto_port(settings):
    """(port, server, late collector) on the first port from the base this process can bind, or None."""
    from prometheus_client import CollectorRegistry, start_http_server

    from coachup.settings import AUTO_PORT_SPAN

    late = _Late()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(late)
    base = settings.worker_metrics_port
    for port in range(base, base + AUTO_PORT_SPAN):
        try:
            server, _thread = start_http_server(port, settings.worker_metrics_host, registry=registry)
        except OSError:
            continue
        return port, server, late
    _state["auto_failed"] = f"no free port in {base}-{base + AUTO_PORT_SPAN - 1}"  # logged by serve()
    return None


def target_file(settings, port: int) -> Path:
    """`<metrics root>/targets/worker-<port>.json`: this endpoint for Prometheus's `file_sd_configs`."""
    return settings.metrics_root / "targets" / f"worker-{port}.json"


def _announce(settings, port: int, *, auto: bool) -> None:
    """Log the endpoint and register it as a Prometheus file_sd target (written whole, then renamed)."""
    import json

    host = settings.worker_metrics_host
    address = socket.gethostname() if host in ("", "0.0.0.0", "::") else host
    path = target_file(settings, port)
    path.parent.mkdir(parents=True, exist_ok=True)
    # no `host` label here: it would rename the liveness gauges' own `host` label to `exported_host`
    entry = [{"targets": [f"{address}:{port}"], "labels": {"coachup_process": "worker"}}]
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(entry) + "\n")
    partial.replace(path)
    _state["target"] = path
    log_event(log, "metrics_listening", port=port, auto=auto, url=f"http://{address}:{port}/metrics", target=str(path))


def sample_once(app) -> dict[str, int]:
    """Read every queue's depth (`workers.depths`), set the gauges and publish the snapshot for children.

    Also the heartbeat: the worker is alive now, and its broker answered (or not). A failed read blanks the
    depth gauges and withdraws the children's snapshot before it raises, so no stale number looks fresh.
    """
    from coachup.metrics.queue_depth import write_snapshot

    from .depths import read_depths

    metrics, folder, now = metrics_for(app), _state.get("dir"), time.time()
    try:
        depths, in_flight = read_depths(app).gauges()
    except Exception:
        metrics.heartbeat(worker_host(), broker_connected=False, at=now)
        metrics.blank_queue_depths()
        if folder is not None:
            (folder / SNAPSHOT_NAME).unlink(missing_ok=True)
        raise
    metrics.set_queue_depths(depths, in_flight, at=now, host=worker_host())
    metrics.heartbeat(worker_host(), broker_connected=True, at=now)
    if folder is not None:
        write_snapshot(folder, depths)
    return depths


def worker_host() -> str:
    """The `host` label of the liveness gauges: this machine (pod) name, one series per worker host."""
    return socket.gethostname()


def _sampler(app, interval_s: float, stopping: threading.Event) -> None:
    last_error = None
    while not stopping.is_set():
        try:
            sample_once(app)
            if last_error is not None:
                log_event(log, "queue_depth_recovered")
            last_error = None
        except Exception as exc:  # the broker may be down; the next sample tries again
            if type(exc).__name__ != last_error:
                last_error = type(exc).__name__
                log_event(log, "queue_depth_error", logging.WARNING, error={"type": last_error})
        stopping.wait(interval_s)


def serve(app) -> None:
    """Start the metrics endpoint and the depth sampler (idempotent; a busy port is logged, not fatal)."""
    from coachup.metrics import multiproc

    if _state.get("serving"):
        return
    _state["serving"] = True
    settings = app.coachup.settings
    folder = _state.get("dir") or multiproc.active_dir()
    if "auto_port" in _state:
        _announce(settings, _state.pop("auto_port"), auto=True)
    elif "auto_failed" in _state:
        error = {"type": "NoFreePort", "message": _state.pop("auto_failed")}
        log_event(log, "metrics_server_error", logging.ERROR, port=settings.worker_metrics_port, error=error)
    elif (
        settings.worker_metrics_port
        and not settings.worker_metrics_auto
        and folder is not None
        and "server" not in _state
    ):
        from prometheus_client import start_http_server

        try:
            server, _thread = start_http_server(
                settings.worker_metrics_port, settings.worker_metrics_host, registry=multiproc.collect_registry(folder)
            )
            _state["server"] = server
            _announce(settings, settings.worker_metrics_port, auto=False)
        except OSError as exc:
            log_event(  # `coachup worker` checks the port first; `celery -A workers worker` lands here
                log,
                "metrics_server_error",
                logging.ERROR,
                port=settings.worker_metrics_port,
                error={"type": type(exc).__name__, "message": str(exc.strerror or "")},
            )
    stopping = threading.Event()
    _state["stopping"] = stopping
    thread = threading.Thread(
        target=_sampler,
        args=(app, settings.queue_depth_interval_s, stopping),
        name="queue-depth",
        daemon=True,
    )
    thread.start()


def stop() -> None:
    """Stop the sampler and the endpoint (worker shutdown)."""
    stopping = _state.pop("stopping", None)
    if stopping is not None:
        stopping.set()
    server = _state.pop("server", None)
    if server is not None:
        server.shutdown()
        server.server_close()
    target = _state.pop("target", None)
    if target is not None:
        target.unlink(missing_ok=True)  # Prometheus stops scraping an endpoint that is gone
    _state.pop("serving", None)
