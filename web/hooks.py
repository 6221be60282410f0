"""The one module of Flask request hooks: request context in, request id out, one request log line."""

from __future__ import annotations

import logging
import time

from flask import Flask, g, request

from coachup import context
from coachup.context import RequestContext, new_request_id, safe_token, valid_request_id, valid_traceparent
from coachup.logs import log_event
from coachup.metrics import Metrics

from .errors import error_response
from .request_log import whitelisted_params

__all__ = ["install_hooks", "canonical_route", "MAX_HEADER_BYTES"]

log = logging.getLogger("coachup.api")
# total request header size; above it the request is refused with 431. The front end's proxy forwards every
# browser header, cookies included (3-8 KB is common), so 16 KB must pass with room to spare. gunicorn's own
# limits (web/gunicorn_conf.py) sit above this one, and what they refuse still gets a JSON body.
MAX_HEADER_BYTES = 32 * 1024
_HASHED_HEADERS = {
    "x-user-id": ("user", "userIdHash"),
    "x-session-id": ("session", "sessionIdHash"),
    "x-tracked-skill-id": ("tracked_skill", "trackedSkillIdHash"),
    "x-group-id": ("group", "groupId"),
}


def canonical_route() -> str:
    """`METHOD /path/{param}` from the matched rule, never the raw path."""
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    for conv in ("<string:", "<path:", "<int:", "<"):
        rule = rule.replace(conv, "{")
    return f"{request.method} {rule.replace('>', '}')}"


def _context_from_request(hasher) -> RequestContext:
    headers = request.headers
    rid = headers.get("x-request-id", "")
    request_id = rid if valid_request_id(rid) else new_request_id()
    values: dict[str, str | None] = {}
    tp = headers.get("traceparent")
    if valid_traceparent(tp):
        values["traceparent"] = tp
    for header, (kind, field) in _HASHED_HEADERS.items():
        raw = headers.get(header)
        if raw:
            values[field] = hasher.hash(kind, raw[:256])
    values["provider"] = safe_token(headers.get("x-provider"))
    values["modelId"] = safe_token(headers.get("x-model-id"))
    return RequestContext(requestId=request_id, **values)


def install_hooks(app: Flask, metrics: Metrics | None = None) -> None:
    """Request context, the request log line and the HTTP metrics (on `metrics`, or a new `Metrics`)."""
    runtime = app.extensions["coachup"]
    metrics = app.extensions.setdefault("coachup_metrics", metrics or Metrics())

    @app.before_request
    def _begin():
        g.started = time.perf_counter()
        g.log_fields = {}
        g.log_params = {}
        ctx = _context_from_request(runtime.hasher)
        g.ctx_token = context.bind(ctx)
        g.ctx = ctx
        size = sum(len(k) + len(v) + 4 for k, v in request.headers.items())
        if size > MAX_HEADER_BYTES:
            return error_response(431, "headers_too_large", f"request headers exceed {MAX_HEADER_BYTES} bytes")
        return None

    @app.after_request
    def _finish(response):
        ctx = getattr(g, "ctx", None)
        if ctx is not None:
            response.headers["x-request-id"] = ctx.requestId
        started = getattr(g, "started", None)
        latency_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
        level = (
            logging.ERROR
            if response.status_code >= 500
            else (logging.WARNING if response.status_code >= 400 else logging.INFO)
        )
        route = canonical_route()
        fields = dict(getattr(g, "log_fields", {}))
        derived = {**(fields.pop("params", None) or {}), **getattr(g, "log_params", {})}
        params = whitelisted_params(route, request.args, derived)
        if params:
            fields["params"] = params
        log_event(
            log,
            "http_request",
            level,
            route=route,
            method=request.method,
            status=response.status_code,
            latencyMs=latency_ms,
            **fields,
        )
        try:
            metrics.observe_http(route, request.method, response.status_code, (latency_ms or 0) / 1000)
        except Exception:  # observers never break a response
            log.warning("request metrics failed", extra={"event": "observer_error"})
        return response

    @app.teardown_request
    def _teardown(_exc):
        token = g.pop("ctx_token", None)
        if token is not None:
            context.unbind(token)
