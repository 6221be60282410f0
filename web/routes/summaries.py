"""Rolling session summaries: `POST /api/v1/session-summary/generate` summarises what the caller sends
(on top of the previous summary) and stores it as the next version; `GET /api/v1/session-summary` reads the
latest version with an `ETag` (`If-None-Match` answers 304). The background job (`workers/tasks/summaries.py`)
writes versions the same way, every `SUMMARY_WINDOW_N` ingested turns.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, request

from coachup.chat.inputs import parse_messages
from coachup.errors import CoachupError, ProviderUnconfigured, ValidationFailed
from coachup.logs import log_event
from coachup.store.summaries import SummaryRecord, SummaryStore
from coachup.summaries import summarise

from ..errors import ApiError
from ..runtime import runtime
from ..session_access import require_session_access
from ..validation import json_body, opt_int, opt_str, req_id_field

bp = Blueprint("summaries", __name__)
log = logging.getLogger("coachup.api")

MAX_MESSAGES = 400
MAX_PREV_CHARS = 40_000
BUDGET_RANGE = (100, 8000)  # tokens; below ~100 a summary says nothing, above 8000 it is no longer short
WRITE_ATTEMPTS = 3


def _etag(version: int) -> str:
    return f'"v{version}"'


def _body(session_id: str, latest: SummaryRecord | None) -> dict:
    return {
        "sessionId": session_id,
        "version": latest.version if latest else 0,
        "updatedAt": latest.updated_at_ms if latest else 0,
        "summaryText": latest.text if latest else "",
        "turnsCovered": latest.turns_covered if latest else 0,
    }


@bp.get("/api/v1/session-summary")
def get_summary():
    rt = runtime()
    session_id = req_id_field(dict(request.args.items()), "sessionId")
    require_session_access(session_id)
    g.log_fields["sessionIdHash"] = rt.hasher.session(session_id)
    latest = SummaryStore(rt.store).latest(session_id)
    etag = _etag(latest.version if latest else 0)
    resp: Response
    if request.if_none_match.contains_weak(etag.strip('"')):
        resp = Response(status=304)
    else:
        resp = current_app.response_class(
            current_app.json.dumps(_body(session_id, latest)), mimetype="application/json"
        )
    resp.headers["ETag"] = etag
    resp.headers["Cache-Control"] = "private, no-cache"  # a cache may keep it, but must ask (304) each time
    return resp


def _budget(data: dict) -> int:
    default = runtime().settings.summary_token_budget
    raw = opt_int(data, "tokenBudget", default=default, lo=1, hi=1_000_000)
    return min(max(raw, BUDGET_RANGE[0]), BUDGET_RANGE[1])


def _write(sums: SummaryStore, session_id: str, text: str, provider: str, model: str) -> SummaryRecord:
    for _ in range(WRITE_ATTEMPTS):  # the unique (session, version) constraint orders racing writers
        latest = sums.latest(session_id)
        record = sums.add_version(
            session_id,
            text,
            after=latest,
            turns_covered=latest.turns_covered if latest else 0,
            source="api",
            provider=provider,
            model=model,
        )
        if record is not None:
            return record
    raise ApiError(409, "conflict", "the summary changed concurrently; retry")


@bp.post("/api/v1/session-summary/generate")
def generate_summary():
    rt = runtime()
    data = json_body()
    session_id = req_id_field(data, "sessionId")
    prev = opt_str(data, "prevSummary", max_len=MAX_PREV_CHARS) or ""
    raw_messages = data.get("messages") if data.get("messages") is not None else data.get("recentMessages")
    try:
        messages = parse_messages(raw_messages, "messages", max_items=MAX_MESSAGES)
    except ValidationFailed as exc:
        raise ApiError(400, "validation_error", exc.message) from None
    budget = _budget(data)
    require_session_access(session_id, write=True)  # a summary version is a write: it claims the session
    session_hash = rt.hasher.session(session_id)
    g.log_fields.update(sessionIdHash=session_hash, messages=len(messages), tokenBudget=budget)
    sums = SummaryStore(rt.store)
    latest = sums.latest(session_id)
    headers = {"x-request-id": g.ctx.requestId}
    try:
        result = summarise(
            rt.settings,
            prev or (latest.text if latest else ""),
            [(m.role, m.content) for m in messages],
            budget=budget,
            headers=headers,
        )
    except ProviderUnconfigured as exc:
        raise ApiError(503, "provider_unconfigured", exc.message) from None
    except CoachupError as exc:
        _observe(result=None, provider=rt.settings.summary_provider, error=exc.type)
        raise ApiError(502, exc.type, f"the summary provider failed: {exc.message}") from None
    _observe(result=result)
    if not result.text:
        body = {**_body(session_id, latest), "status": "empty", "text": ""}
        resp = current_app.json.response(body)
        resp.headers["X-Summary-Empty"] = "1"
        return resp
    record = _write(sums, session_id, result.text, result.provider, result.model)
    log_event(
        log,
        "summary_generate",
        source="api",
        version=record.version,
        summaryChars=len(record.text),
        provider=result.provider,
        modelId=result.model,
        durationMs=round(result.seconds * 1000),
    )
    return {
        "sessionId": session_id,
        "status": "completed",
        "version": record.version,
        "updatedAt": record.updated_at_ms,
        "text": record.text,
        "provider": result.provider,
        "model": result.model,
    }


def _observe(*, result=None, provider: str = "", error: str | None = None) -> None:
    from coachup.summaries.service import summary_model_name

    try:
        metrics = current_app.extensions["coachup_metrics"]
        settings = runtime().settings
        if result is None:
            metrics.observe_provider_call("summary", provider, summary_model_name(settings), 0.0, error=error)
            return
        metrics.observe_provider_call(
            "summary",
            result.provider,
            result.model,
            result.seconds,
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
        )
    except Exception:  # observers never break a response
        log.warning("summary metrics failed", extra={"event": "observer_error"})
