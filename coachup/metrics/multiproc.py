"""prometheus_client multiprocess mode for prefork workers and gunicorn: one directory per process family.

The launcher (worker main process, gunicorn master) calls `enable(path, wipe=True)` once before any child
exists: the directory is emptied (old files would carry old counts) and `PROMETHEUS_MULTIPROC_DIR` is set so
children inherit it. Values are switched to file-backed ones even when prometheus_client was imported
earlier. Scrapes go through `collect_registry(path)`, which first sweeps the live-gauge files of processes
that no longer exist (a SIGKILLed child never runs its own `mark_process_dead`).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import values as _values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = ["enable", "active_dir", "mark_dead", "sweep_dead", "collect_registry", "render", "files", "ENV_NAME"]

ENV_NAME = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


def enable(path: Path | str, *, wipe: bool) -> Path:
    """Use `path` for this process and its future children; `wipe` empties it first (launcher only)."""
    path = Path(path).resolve()
    if wipe and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_NAME] = str(path)
    _values.ValueClass = _values.MultiProcessValue()
    return path


def active_dir() -> Path | None:
    """The multiprocess directory this process writes to, or None in single-process mode."""
    raw = os.environ.get(ENV_NAME)
    return Path(raw) if raw else None


def mark_dead(pid: int, path: Path | str | None = None) -> None:
    """Drop the live-gauge files of `pid` (a child that exited); counters and histograms are kept."""
    mark_process_dead(pid, str(path or active_dir()))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_dead(path: Path | str) -> list[int]:
    """Mark dead every pid whose live-gauge files remain but whose process is gone. Returns those pids."""
    dead = set()
    for name in os.listdir(path):
        match = _LIVE_FILE.match(name)
        if match and not _alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        mark_process_dead(pid, str(path))
    return sorted(dead)


class _SweepingCollector:
    """`MultiProcessCollector` that sweeps dead pids before each collection."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        self._inner = MultiProcessCollector(None, path=self._path)

    def collect(self):
        try:
            sweep_dead(self._path)
        except OSError:
            pass  # a file vanished between listdir and remove: another sweeper got it
        return self._inner.collect()


def collect_registry(path: Path | str) -> CollectorRegistry:
    """A registry that merges every process's files under `path` (dead pids swept at each scrape)."""
    registry = CollectorRegistry()
    registry.register(_SweepingCollector(path))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of `registry`."""
    return generate_latest(registry)


def files(path: Path | str) -> list[str]:
    """The value files under `path` (tests and diagnostics)."""
    return sorted(os.path.basename(f) for f in glob.glob(os.path.join(str(path), "*.db")))
