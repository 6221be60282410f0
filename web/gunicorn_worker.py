"""gunicorn's threaded worker (gthread), answering what gunicorn refuses before Flask sees it with our JSON error body.

gunicorn parses the request line and headers itself and, for a request over its limits or malformed,
writes an HTML page (`gunicorn.util.write_error`). Every error of this API is `{"error": {"type",
"message"}}`, so this worker overrides the one hook gunicorn calls for it, `handle_error`: the same
status codes (431 for headers over `limit_request_field_size` / `limit_request_fields`, 414 for a request
line over `limit_request_line`, 400 for a malformed request), a JSON body, an `x-request-id`, and one
`http_request_rejected` log line. Used by `coachup api` through `worker_class` in `web/gunicorn_conf.py`.
"""

from __future__ import annotations

import json
import logging
from ssl import SSLError

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import ThreadWorker

from coachup.context import new_request_id
from coachup.logs import log_event

__all__ = ["JsonErrorWorker", "rejection"]

log = logging.getLogger("coachup.api")

_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    414: "URI Too Long",
    417: "Expectation Failed",
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


class JsonErrorWorker(ThreadWorker):
    """gunicorn's `gthread` worker (one thread per open request or chat stream) whose parse and limit errors are JSON (`{"error": {"type", "message"}}`), never HTML."""

    def handle_error(self, req, client, addr, exc):
        status, kind, message = rejection(exc)
        request_id = new_request_id()
        if status >= 500:
            self.log.exception("Error handling request")
        log_event(
            log,
            "http_request_rejected",
            logging.ERROR if status >= 500 else logging.WARNING,
            status=status,
            error={"type": kind, "class": type(exc).__name__},
            requestId=request_id,
        )
        body = json.dumps({"error": {"type": kind, "message": message}}).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            "Connection: close\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"x-request-id: {request_id}\r\n\r\n"
        ).encode("latin-1")
        try:
            util.write_nonblock(client, head + body)
        except Exception:  # the client is gone; nothing more to tell it
            self.log.debug("Failed to send error message.")
