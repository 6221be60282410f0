"""prometheus_client multiprocess mode for prefork workers and gunicorn: one directory per process family.

The launcher (worker main process, gunicorn master) calls `enable(path, wipe=True)` once before any child
exists: the directory is emptied (old files would carry old counts) and `PROMETHEUS_MULTIPROC_DIR` is set so
children inherit it. Values are switched to file-backed ones even when prometheus_client was imported
earlier. Scrapes go through `collect_registry(path)`, which first sweeps the live-gauge files of processes
that no longer exist (a SIGKILLed child never runs its own `mark_process_dead`) and then compacts the
counter, histogram, summary and pid-less gauge files of dead processes into one archive file per kind.

Why compact: prometheus_client keeps one file per process and type and reads them all at every scrape.
A worker that recycles its children (`--max-tasks-per-child`) leaves three files per child behind, so
after 100,000 tasks a scrape read ~300 files and took ~55 ms instead of ~3. A dead process's values never
change again, so they are combined into `<kind>_archive.db` (summed; for `mostrecent` gauges the latest
write wins, `max`/`min` keep the extreme), which prometheus_client reads like any other file of its kind,
and its files removed. Gauges in `all` mode keep one series per pid and are left alone. The combination is
written to a temporary file and renamed over the archive, then the merged files are removed; an exclusive
lock in the directory keeps two compactions apart and a shared one keeps a scrape from seeing a half-done
compaction (see `_locked`). A compaction that dies between that rename and those removals counts the merged
files twice.
"""

from __future__ import annotations

import fcntl
import glob
import os
import re
import shutil
import threading
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import values as _values
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = [
    "enable",
    "active_dir",
    "mark_dead",
    "sweep_dead",
    "compact",
    "collect_registry",
    "without",
    "render",
    "files",
    "ENV_NAME",
]

ENV_NAME = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")
# per-process files whose values combine across processes without the pid: counters, histograms and
# summaries add up, and so do the gauge modes that drop the pid label (`all` keeps it; `live*` are swept)
_MERGEABLE_FILE = re.compile(r"^(counter|histogram|summary|gauge_(?:mostrecent|max|min|sum))_(\d+)\.db$")
_LOCK_NAME = ".compact.lock"


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


_thread_lock = threading.Lock()
os.register_at_fork(after_in_child=lambda: globals().__setitem__("_thread_lock", threading.Lock()))


@contextmanager
def _locked(path: str, mode: int):
    """The directory's lock, shared (`LOCK_SH`) or exclusive (`LOCK_EX`), between processes and threads.

    POSIX record locks (`lockf`), not `flock`: a pool child forked while a scrape holds the lock would
    inherit an `flock` and keep it for its whole life, and every later scrape would hang (seen here: a
    worker replacing a child during a scrape). Record locks are never inherited. They do not exclude the
    threads of one process, and closing any descriptor of the file drops them, so one thread at a time
    holds the lock in a process.
    """
    with _thread_lock:
        fd = os.open(os.path.join(path, _LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.lockf(fd, mode)
            yield
        finally:
            os.close(fd)  # releases the lock


def compact(path: Path | str) -> int:
    """Fold the files of dead processes into one `<kind>_archive.db` per kind; returns the files merged."""
    path = str(path)
    dead: dict[str, list[str]] = defaultdict(list)
    for name in os.listdir(path):
        match = _MERGEABLE_FILE.match(name)
        if match and int(match.group(2)) != os.getpid() and not _alive(int(match.group(2))):
            dead[match.group(1)].append(os.path.join(path, name))
    if not dead:
        return 0
    merged = 0
    with _locked(path, fcntl.LOCK_EX):
        for kind, sources in dead.items():
            sources = [f for f in sources if os.path.exists(f)]  # another compaction may have taken them
            if sources:
                _merge_into_archive(path, kind, sources)
                merged += len(sources)
    return merged


def _combine(kind: str, sources: list[str]) -> dict[str, tuple[float, float]]:
    """key -> (value, timestamp) over `sources`, combined the way prometheus_client combines processes."""
    out: dict[str, tuple[float, float]] = {}
    for f in sources:
        for key, value, ts, _pos in MmapedDict.read_all_values_from_file(f):
            if key not in out:
                out[key] = (value, ts)
                continue
            old, old_ts = out[key]
            if kind == "gauge_mostrecent":
                out[key] = (value, ts) if ts > old_ts else (old, old_ts)
            elif kind == "gauge_max":
                out[key] = (max(old, value), 0.0)
            elif kind == "gauge_min":
                out[key] = (min(old, value), 0.0)
            else:  # counter, histogram (raw buckets are per bucket), summary, gauge_sum
                out[key] = (old + value, 0.0)
    return out


def _merge_into_archive(path: str, kind: str, sources: list[str]) -> None:
    archive = os.path.join(path, f"{kind}_archive.db")
    combined = _combine(kind, ([archive] if os.path.exists(archive) else []) + sources)
    temp = archive + ".tmp"  # not `*.db`: invisible to a scrape until renamed
    if os.path.exists(temp):
        os.remove(temp)  # left by a compaction that died before its rename
    out = MmapedDict(temp)
    try:
        for key, (value, ts) in combined.items():
            out.write_value(key, value, ts)
    finally:
        out.close()
    os.replace(temp, archive)
    for f in sources:
        os.remove(f)


class _SweepingCollector:
    """`MultiProcessCollector` that sweeps and compacts dead pids before each collection."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        self._inner = MultiProcessCollector(None, path=self._path)

    def collect(self):
        try:
            sweep_dead(self._path)
        except OSError:
            pass  # a file vanished between listdir and remove: another sweeper got it
        try:
            compact(self._path)
        except (OSError, RuntimeError):
            pass  # the files stay as they are and are read one by one, as prometheus_client does
        with _locked(self._path, fcntl.LOCK_SH):
            return list(self._inner.collect())


def collect_registry(path: Path | str, *, without: tuple[str, ...] = ()) -> CollectorRegistry:
    """A registry that merges every process's files under `path` (dead pids swept at each scrape), plus the
    standard `process_*` metrics of the process that serves the scrape; families named in `without` are
    left out (the API leaves out what only workers move)."""
    from prometheus_client import ProcessCollector

    registry = CollectorRegistry()
    registry.register(_Without(_SweepingCollector(path), without) if without else _SweepingCollector(path))
    ProcessCollector(registry=registry)
    return registry


def without(collector, names: tuple[str, ...]) -> CollectorRegistry:
    """A registry serving `collector` (a registry or a collector) minus the families named in `names`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Without(collector, names))
    return registry


class _Without:
    """A collector minus some families (by name)."""

    def __init__(self, inner, names: tuple[str, ...]) -> None:
        self._inner, self._names = inner, frozenset(names)

    def collect(self):
        return [family for family in self._inner.collect() if family.name not in self._names]


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of `registry`."""
    return generate_latest(registry)


def files(path: Path | str) -> list[str]:
    """The value files under `path` (tests and diagnostics)."""
    return sorted(os.path.basename(f) for f in glob.glob(os.path.join(str(path), "*.db")))
