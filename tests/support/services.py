"""Real servers: the machine's shared Redis and PostgreSQL, and private servers on free ports.

A service that is absent skips the test on a laptop (with the reason) and fails it in CI (`CI` set).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from .wait import wait_until

# COACHUP_TEST_REDIS_PORT points the suite at another redis-server (e.g. a private one with all 16 databases free)
REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("COACHUP_TEST_REDIS_PORT", "6379"))
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


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# Fixtures alive at the same time must not share a Redis database: a worker on another fixture's database
# would consume its messages. Each user takes a named slot of COACHUP_TEST_REDIS_DBS.
REDIS_SLOTS = ("stack-postgres", "stack-sqlite", "observability", "observability-scratch", "speech")


def redis_db(slot: str) -> int:
    """The Redis database of a named slot (see `REDIS_SLOTS`)."""
    dbs = [int(x) for x in os.environ.get("COACHUP_TEST_REDIS_DBS", "10,11,12,13,14").split(",")]
    index = REDIS_SLOTS.index(slot)
    if index >= len(dbs):
        pytest.fail(f"COACHUP_TEST_REDIS_DBS needs {len(REDIS_SLOTS)} databases ({', '.join(REDIS_SLOTS)})")
    return dbs[index]


def redis_url(db: int) -> str:
    require(port_open(REDIS_HOST, REDIS_PORT), "Redis on 127.0.0.1:6379")
    import redis

    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


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
        from sqlalchemy import text

        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self._admin.dispose()


class PrivateRedis:
    """A redis-server of our own on a free port, which a test may stop and start."""

    def __init__(self, *, appendonly: bool = False) -> None:
        exe = shutil.which("redis-server")
        require(exe is not None, "redis-server binary")
        self.exe = exe
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="coachup-redis-"))
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.exe,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout=10, what="private redis to listen")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        wait_until(lambda: not port_open("127.0.0.1", self.port), timeout=10, what="private redis to stop")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
