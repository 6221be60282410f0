"""`GET /chat/stream`: the coach's reply as Server-Sent Events, the way the front end's proxy and its
`EventSource` read it (docs/chat.md).

Everything that can be wrong with a request is found before the first byte: a bad query answers a 4xx JSON
error, a full house answers 503. Then the response streams: `event: prompt`, `event: model`, the reply as
`data:` chunks, `data: [DONE]`; `: ping` comments while the model thinks; `event: timeout` (then
`data: [DONE]`) when no first token comes in time; `event: error` when the provider fails.
"""

from __future__ import annotations

import inspect
import logging
import threading

from flask import Blueprint, Response, current_app, g, request

from coachup import context
from coachup.chat import (
    ChatInputs,
    ChatStream,
    build_prompt,
    choose_chat_model,
    decode_b64url_json,
    parse_messages,
    sse,
)
from coachup.chat.errors import classify_chat_error
from coachup.chat.inputs import bounded_text
from coachup.chat.observe import ChatObserver
from coachup.chat.prompt import resolve_prompt
from coachup.chat.providers import build_chat_model
from coachup.errors import CoachupError, ProviderUnconfigured, ValidationFailed
from coachup.store.summaries import SummaryStore

from ..errors import ApiError, error_response
from ..runtime import runtime
from ..session_access import require_session_access
from ..validation import ID_PATTERN

bp = Blueprint("chat", __name__)
log = logging.getLogger("coachup.chat")

SSE_HEADERS = {
    "Cache-Control": "no-store, no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx and other proxies: pass each event through at once
}


class _Slots:
    """Open streams in this process, bounded: the threads beyond the bound stay free for every other route."""

    def __init__(self) -> None:
        self._open = 0
        self._lock = threading.Lock()

    def acquire(self, limit: int) -> bool:
        with self._lock:
            if self._open >= limit:
                return False
            self._open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._open -= 1


_slots = _Slots()


def _session_id() -> str | None:
    value = request.args.get("sessionId") or None
    if value is not None and not ID_PATTERN.match(value):
        raise ApiError(400, "validation_error", "sessionId must be a string of 1-200 letters, digits or _.:@-")
    return value


def _inputs(rt, session_id: str | None) -> ChatInputs:
    args = request.args
    history = parse_messages(decode_b64url_json(args.get("history"), "history"), "history")
    profile = decode_b64url_json(args.get("userProfile"), "userProfile")
    if profile is not None and not isinstance(profile, dict):
        raise ValidationFailed("userProfile must be a JSON object")
    goals = decode_b64url_json(args.get("userGoals"), "userGoals")
    if isinstance(goals, dict):
        goals = goals.get("goals", [goals])
    if goals is not None and not isinstance(goals, list):
        raise ValidationFailed("userGoals must be a JSON array")
    prompt, history = resolve_prompt(bounded_text(args.get("prompt"), "prompt"), history)
    summary = None
    if session_id and not any(m.role == "system" for m in history):
        latest = SummaryStore(rt.store).latest(session_id)  # the rolling summary, when the client sent none
        summary = latest.text if latest else None
    return ChatInputs(
        prompt=prompt,
        history=history,
        system_prompt=bounded_text(args.get("systemPrompt"), "systemPrompt"),
        user_profile=profile,
        user_goals=goals or [],
        summary=summary,
    )


def _upstream_headers(ctx) -> dict[str, str]:
    headers = {"x-request-id": ctx.requestId}
    if ctx.traceparent:
        headers["traceparent"] = ctx.traceparent
    return headers


@bp.get("/chat/stream")
def chat_stream():
    rt = runtime()
    settings = rt.settings
    session_id = _session_id()
    require_session_access(session_id)
    try:
        inputs = _inputs(rt, session_id)
        choice = choose_chat_model(settings, request.args.get("model"))
    except ValidationFailed as exc:
        raise ApiError(400, "validation_error", exc.message) from None
    except ProviderUnconfigured as exc:
        raise ApiError(503, "provider_unconfigured", exc.message) from None
    messages, prompt_event = build_prompt(inputs)
    if not _slots.acquire(settings.chat_max_streams):
        resp = error_response(503, "too_many_streams", "this API process holds its maximum of open chat streams")
        resp.headers["Retry-After"] = "1"
        return resp
    ctx = g.ctx
    session_hash = rt.hasher.session(session_id)
    g.log_fields.update(sessionIdHash=session_hash, provider=choice.provider, modelId=choice.model)
    observer = ChatObserver(
        current_app.extensions["coachup_metrics"],
        choice.provider,
        choice.model,
        {"sessionIdHash": session_hash, "promptChars": len(inputs.prompt), "historyItems": len(inputs.history)},
    )
    try:
        stream = ChatStream(
            build_chat_model(settings, choice, _upstream_headers(ctx)),
            messages,
            first_token_timeout_s=settings.chat_first_token_timeout_ms / 1000,
            heartbeat_s=settings.chat_heartbeat_ms / 1000,
            max_s=settings.chat_stream_max_s,
            classify=classify_chat_error,
            on_provider_done=observer.provider_done,
        )
    except BaseException:
        _slots.release()
        raise
    body = _StreamBody(
        _frames(stream, observer, ctx, prompt_event, {"provider": choice.provider, "model": choice.model})
    )
    headers = {**SSE_HEADERS, "X-Chat-Provider": choice.provider, "X-Chat-Model": choice.model}
    return Response(body, status=200, mimetype="text/event-stream", headers=headers)


class _StreamBody:
    """The response iterable. Its `close()` (called by the server after the last byte, after a failed write,
    or when the body was never sent at all) ends the stream and frees its slot exactly once."""

    def __init__(self, frames) -> None:
        self._frames = frames

    def __iter__(self):
        return self._frames

    def close(self) -> None:
        never_started = inspect.getgeneratorstate(self._frames) == inspect.GEN_CREATED
        self._frames.close()  # a started generator runs its `finally` (cancel, release, observe)
        if never_started:
            _slots.release()


def _frames(stream: ChatStream, observer: ChatObserver, ctx, prompt_event: dict, model_event: dict):
    """The response body. Runs after the view returned (gunicorn iterates it); closed early on a disconnect."""
    observer.stream_started()
    try:
        yield sse.event("prompt", prompt_event)
        yield sse.event("model", model_event)
        for kind, value in stream.events():
            if kind == "text":
                yield sse.data(str(value))
            elif kind == "heartbeat":
                yield sse.comment("ping")
            elif kind == "done":
                yield sse.DONE
            elif kind == "timeout":
                ms = round(stream.first_token_timeout_s * 1000)
                message = f"no reply token within {ms} ms"
                yield sse.event("timeout", {"error": {"type": "first_token_timeout", "message": message}})
                yield sse.comment(f"provider timeout after {ms} ms")
                yield sse.DONE
            else:  # a typed provider error: the client's EventSource sees an `error` event, then the end
                error = value if isinstance(value, CoachupError) else CoachupError(str(kind))
                yield sse.event("error", {"error": {"type": error.type, "message": error.message}})
    finally:
        stream.cancel()
        _slots.release()
        with context.use(ctx):  # the request's ids on the log line (the request context is gone by now)
            observer.stream_done(stream.outcome)
