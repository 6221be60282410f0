"""A request body must arrive within gunicorn's `--timeout`, and no socket operation may block longer.

Under sync workers gunicorn itself enforced this: a worker stuck reading a trickling upload stopped notifying
the master and was replaced after `--timeout`. Under gthread workers (chosen so chat streams hold a thread,
not a process; docs/chat.md) the master keeps hearing from the worker whatever one thread does, so a client
sending 1 KiB every 50 ms could hold a thread for minutes. This WSGI middleware restores the bound: reads
of `wsgi.input` get the time left before the deadline as their socket timeout; past it the read side is shut
(gunicorn must not wait for the rest of that body either) and the request answers 408. After the view
returned, every send or receive on the connection (a chat stream's writes to a client that stopped
reading, the next keep-alive request) is bounded by the same timeout.

`configure(seconds)` is called by `web.gunicorn_conf.post_worker_init`; outside gunicorn (tests with the Flask
client, no `gunicorn.socket`) the middleware does nothing.
"""

from __future__ import annotations

import socket
import time

from werkzeug.exceptions import RequestTimeout

__all__ = ["BodyDeadline", "configure"]

_seconds: float | None = None


def configure(seconds: float | None) -> None:
    global _seconds
    _seconds = float(seconds) if seconds and seconds > 0 else None


class _DeadlineInput:
    def __init__(self, stream, sock: socket.socket, seconds: float) -> None:
        self._stream, self._sock, self._seconds = stream, sock, seconds
        self._deadline = time.monotonic() + seconds

    def _expire(self):
        try:
            self._sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        raise RequestTimeout(f"the request body did not arrive within {self._seconds:g} s")

    def _call(self, method: str, *args):
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self._expire()
        self._sock.settimeout(remaining)
        try:
            return getattr(self._stream, method)(*args)
        except TimeoutError:  # socket.timeout
            self._expire()

    def read(self, *args):
        return self._call("read", *args)

    def readline(self, *args):
        return self._call("readline", *args)

    def readlines(self, *args):
        return self._call("readlines", *args)

    def __iter__(self):
        while line := self.readline():
            yield line

    def __getattr__(self, name: str):
        # readers probe for `readinto`/`read1` with hasattr: offer them only when the wrapped stream has them
        attr = getattr(self._stream, name)
        if name in ("readinto", "read1"):
            return lambda *args: self._call(name, *args)
        return attr  # anything else (close, readable, ...) is the wrapped stream's own


class BodyDeadline:
    """WSGI middleware around the Flask app (see the module docstring)."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        sock, seconds = environ.get("gunicorn.socket"), _seconds
        if sock is None or seconds is None or environ.get("wsgi.input") is None:
            return self.app(environ, start_response)
        environ["wsgi.input"] = _DeadlineInput(environ["wsgi.input"], sock, seconds)
        try:
            return self.app(environ, start_response)
        finally:
            try:
                sock.settimeout(seconds)
            except OSError:
                pass
