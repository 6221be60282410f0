"""A PostgreSQL server of our own (initdb + pg_ctl) on a free port in a temp dir, which a test may stop.

The shared server on 5432 is never touched. PostgreSQL refuses to run as root, so under root the server
runs as the `postgres` user (`runuser -u postgres`).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .services import free_port, port_open, require
from .wait import wait_until

__all__ = ["PrivatePostgres"]


def _bindir() -> str | None:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return dirs[-1] if dirs and os.path.exists(os.path.join(dirs[-1], "pg_ctl")) else None


class PrivatePostgres:
    """`url` points at database `coachup` on 127.0.0.1:`port` (trust auth); `stop()`/`start()` for outages."""

    def __init__(self) -> None:
        bindir = _bindir()
        require(bindir is not None, "PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="coachup-pg-"))
        self.data = self.root / "data"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "coachup")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/coachup"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, os.path.join(self.bindir, tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.root,
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "pg.log"), "-o", opts, "-w", "start")
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout=20, what="private postgres to listen")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)
