"""Every error the API answers has the body `{"error": {"type", "message"}}`."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

__all__ = ["ApiError", "register_error_handlers", "error_response"]

log = logging.getLogger("coachup.api")

_HTTP_TYPES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    431: "headers_too_large",
    501: "not_implemented",
    503: "service_unavailable",
}


class ApiError(Exception):
    """Raise from a view to answer `status` with a typed JSON error."""

    def __init__(self, status: int, type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.type, self.message = status, type, message


def error_response(status: int, type: str, message: str):
    resp = jsonify({"error": {"type": type, "message": message}})
    resp.status_code = status
    return resp


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.type, exc.message)

    # No route that starts work waits on the broker: a job row committed is a job that will run (the outbox relay,
    # workers/relay.py, publishes it). The store is the one dependency a request needs: when it cannot be reached,
    # the transaction did not commit, so a 503 means nothing was stored and the retry does the work.
    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _store_down(exc: Exception):
        log.warning("store unavailable", extra={"event": "store_unavailable", "error": {"type": type(exc).__name__}})
        return error_response(503, "store_unavailable", "the store is unavailable; retry shortly")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        message = {413: "request body exceeds MAX_CONTENT_LENGTH"}.get(status, exc.description or exc.name)
        return error_response(status, _HTTP_TYPES.get(status, "http_error"), message)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # exc_info: the line carries exc_type and exc_frames (file:line:function only, no values), as workers' do
        log.error(
            "unhandled error",
            exc_info=exc,
            extra={"event": "api_unhandled_error", "error": {"type": type(exc).__name__}},
        )
        return error_response(500, "internal_error", "unexpected server error")
