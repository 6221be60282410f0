"""gunicorn's threaded worker (gthread), answering what gunicorn refuses before Flask sees it with our JSON error body.

gunicorn parses the request line and headers itself and, for a request over its limits or malformed,
writes an HTML page (`gunicorn.util.write_error`). Every error of this API is `{"error": {"type",
"message"}}`, so this worker overrides the one hook gunicorn calls for it, `handle_error`: the same
status codes (431 for headers over `limit_request_field_size` / `limit_request_fields`, 414 for a request
line over `limit_request_line`, 400 for a malformed request), a JSON body, an `x-request-id`, one
`http_request_rejected` log line and `coachup_http_server_rejections_total{status,type}`.

The worker timeout: gthread's main loop heartbeats on its own, so gunicorn never kills a worker for one
request stuck on a hung store or broker, and such a request held its client for as long as the stall lasted
(60 s and more). Here a request whose app has not started its response within `--timeout` (gunicorn's
`timeout`, 30 s by default) plus one second (so a body still trickling in gets its 408 from
`web.body_deadline`, which stops reading at `--timeout`, first) is answered by a watchdog thread: 504 `{"error": {"type": "timeout"}}`, its
`x-request-id`, one `http_request_timeout` log line and the same counter; the connection is then shut down.
The app's thread finishes on its own (a thread cannot be killed); its late response is dropped, never
written after ours (`_Deadline`: a lock decides which of the two answers). A response that has started
(a chat stream) is never cut.

Used by `coachup api` through `worker_class` in `web/gunicorn_conf.py`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from ssl import SSLError
from typing import Any

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import ThreadWorker

from coachup.context import new_request_id, valid_request_id
from coachup.logs import log_event

__all__ = ["JsonErrorWorker", "RequestAbandoned", "rejection"]

log = logging.getLogger("coachup.api")

_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    414: "URI Too Long",
    417: "Expectation Failed",
    504: "Gateway Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}
# gunicorn's own request errors (everything its parser raises), by the answer they get
_BY_CLASS: tuple[tuple[tuple[type[BaseException], ...], int, str, str], ...] = (
    (
        (http_errors.LimitRequestHeaders,),
        431,
        "headers_too_large",
        "request headers exceed the server's limits",
    ),
    ((http_errors.LimitRequestLine,), 414, "uri_too_long", "the request line is too long"),
    ((http_errors.UnsupportedTransferCoding,), 501, "not_implemented", "unsupported transfer coding"),
    ((http_errors.ExpectationFailed,), 417, "expectation_failed", "unsupported Expect header"),
    ((http_errors.ForbiddenProxyRequest, SSLError), 403, "forbidden", "request forbidden"),
    ((http_errors.ParseException,), 400, "bad_request", "malformed HTTP request"),
)


def rejection(exc: BaseException) -> tuple[int, str, str]:
    """(status, error type, message) for an error gunicorn hands to `handle_error`."""
    server_side = (
        http_errors.InvalidResponseHeader,
        http_errors.InvalidResponseHeaderName,
        http_errors.ConfigurationProblem,
    )
    if isinstance(exc, server_side):  # our fault, not the client's
        return 500, "internal_error", "unexpected server error"
    for classes, status, kind, message in _BY_CLASS:
        if isinstance(exc, classes):
            return status, kind, message
    return 500, "internal_error", "unexpected server error"


def _json_answer(status: int, kind: str, message: str, request_id: str) -> bytes:
    body = json.dumps({"error": {"type": kind, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"x-request-id: {request_id}\r\n\r\n"
    ).encode("latin-1")
    return head + body


def _count(metrics, status: int, kind: str) -> None:
    try:
        if metrics is not None:
            metrics.record_server_rejection(status, kind)
    except Exception:  # a metric must never stop an answer
        log.debug("server rejection not counted", exc_info=True)


_GRACE_S = 1.0  # past `--timeout`: `web.body_deadline` answers a trickling body (408) before the watchdog does


class RequestAbandoned(Exception):
    """The watchdog answered this request (timeout) before its app started a response."""


class _InFlight:
    __slots__ = ("sock", "deadline", "request_id", "lock", "started", "abandoned")

    def __init__(self, sock, deadline: float, request_id: str) -> None:
        self.sock = sock
        self.deadline = deadline
        self.request_id = request_id
        self.lock = threading.Lock()
        self.started = False
        self.abandoned = False


class _Deadline:
    """WSGI wrapper: every request is watched until its app starts the response; past `seconds` the watchdog
    answers 504 instead, and the app's own `start_response` then raises `RequestAbandoned`."""

    def __init__(self, app, seconds: float, metrics) -> None:
        self.app = app
        self.seconds = seconds
        self.metrics = metrics
        self._inflight: set[_InFlight] = set()
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is None or self.seconds <= 0:
            return self.app(environ, start_response)
        rid = environ.get("HTTP_X_REQUEST_ID") or ""
        request_id = rid if valid_request_id(rid) else new_request_id()  # as `web.hooks` reads it
        entry = _InFlight(sock, time.monotonic() + self.seconds + _GRACE_S, request_id)

        def guarded_start(status, headers, exc_info=None):
            with entry.lock:
                if entry.abandoned:
                    raise RequestAbandoned()
                entry.started = True
            return start_response(status, headers, exc_info)

        with self._lock:
            self._inflight.add(entry)
        try:
            return self.app(environ, guarded_start)
        finally:
            with self._lock:
                self._inflight.discard(entry)

    def sweep(self, now: float) -> int:
        """Answer every request past its deadline whose response has not started; how many were answered."""
        with self._lock:
            due = [e for e in self._inflight if e.deadline <= now]
        answered = 0
        for entry in due:
            with entry.lock:
                if entry.started or entry.abandoned:
                    continue
                entry.abandoned = True
            answered += 1
            _count(self.metrics, 504, "timeout")
            log_event(
                log,
                "http_request_timeout",
                logging.ERROR,
                status=504,
                timeoutS=self.seconds,
                requestId=entry.request_id,
            )
            message = f"the request did not finish within {self.seconds:g} s; it may still complete"
            try:
                entry.sock.sendall(_json_answer(504, "timeout", message, entry.request_id))
                entry.sock.shutdown(socket.SHUT_RDWR)  # not close: the app's thread still owns the descriptor
            except OSError:  # the client is gone
                pass
        return answered

    def watch(self, alive) -> None:
        """The watchdog thread's loop (four looks per second) while `alive()`."""
        while alive():
            try:
                self.sweep(time.monotonic())
            except Exception:  # the watchdog must outlive any one answer
                log.exception("request watchdog failed")
            time.sleep(0.25)


def _app_metrics(app):
    extensions = getattr(app, "extensions", None)
    return extensions.get("coachup_metrics") if isinstance(extensions, dict) else None


class JsonErrorWorker(ThreadWorker):
    """gunicorn's `gthread` worker (one thread per open request or chat stream) whose parse and limit errors are JSON (`{"error": {"type", "message"}}`), never HTML, and whose requests past `--timeout` get a JSON 504."""

    _metrics = None

    def load_wsgi(self):
        super().load_wsgi()
        app: Any = getattr(self, "wsgi")  # noqa: B009 - gunicorn sets it untyped (mypy cannot follow)
        self._metrics = _app_metrics(app)
        self.deadline = _Deadline(app, float(self.cfg.timeout or 0), self._metrics)
        self.wsgi = self.deadline
        threading.Thread(
            target=self.deadline.watch, args=(lambda: self.alive,), name="request-watchdog", daemon=True
        ).start()

    def handle_error(self, req, client, addr, exc):
        if isinstance(exc, RequestAbandoned):  # answered by the watchdog already
            return
        status, kind, message = rejection(exc)
        request_id = new_request_id()
        if status >= 500:
            self.log.exception("Error handling request")
        _count(self._metrics, status, kind)
        log_event(
            log,
            "http_request_rejected",
            logging.ERROR if status >= 500 else logging.WARNING,
            status=status,
            error={"type": kind, "class": type(exc).__name__},
            requestId=request_id,
        )
        try:
            util.write_nonblock(client, _json_answer(status, kind, message, request_id))
        except Exception:  # the client is gone; nothing more to tell it
            self.log.debug("Failed to send error message.")
