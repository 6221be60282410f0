"""OpenAPI paths of the chat stream and the session-summary routes (merged into `web.openapi.SPEC`)."""

from __future__ import annotations

__all__ = ["CHAT_PATHS"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_S, _I = {"type": "string"}, {"type": "integer"}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    return {str(c): {"description": "error", **_json(_ERROR)} for c in codes}


def _q(name: str, description: str, **schema) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string", **schema},
        "description": description,
    }


_SUMMARY = {
    "type": "object",
    "properties": {"sessionId": _S, "version": _I, "updatedAt": _I, "summaryText": _S, "turnsCovered": _I},
}
_MESSAGE = {
    "type": "object",
    "properties": {"role": {"type": "string", "enum": ["user", "assistant", "system"]}, "content": _S},
}

CHAT_PATHS: dict = {
    "/chat/stream": {
        "get": {
            "summary": "The coach's reply as Server-Sent Events: event prompt, event model, data chunks, data [DONE]",
            "description": "Comment heartbeats while the model thinks; `event: timeout` then `data: [DONE]` when "
            "no first token comes in CHAT_FIRST_TOKEN_TIMEOUT_MS; `event: error` when the provider fails. "
            "Headers X-Chat-Provider, X-Chat-Model, X-Request-Id. docs/chat.md.",
            "parameters": [
                _q("prompt", "the user's new message (else the last user item of history)", maxLength=4000),
                _q("sessionId", "session id; its stored rolling summary joins the prompt", maxLength=200),
                _q("history", "base64url JSON [{role, content}]"),
                _q("userProfile", "base64url JSON object"),
                _q("userGoals", "base64url JSON array"),
                _q("systemPrompt", "replaces the coach persona", maxLength=4000),
                _q("model", "the configured model or one of CHAT_MODEL_ALLOWLIST"),
            ],
            "responses": {
                "200": {"description": "an event stream", "content": {"text/event-stream": {}}},
                **_errors(400, 401, 403, 404, 503),
            },
        }
    },
    "/api/v1/session-summary": {
        "get": {
            "summary": "The latest rolling summary of a session (version 0 when none), with an ETag",
            "parameters": [{"name": "sessionId", "in": "query", "required": True, "schema": _S}],
            "responses": {
                "200": {"description": "the latest version", **_json(_SUMMARY)},
                "304": {"description": "If-None-Match matched the ETag"},
                **_errors(400, 401, 403, 404),
            },
        }
    },
    "/api/v1/session-summary/generate": {
        "post": {
            "summary": "Summarise messages on top of the previous summary; stored as the next version",
            "requestBody": {
                "required": True,
                **_json(
                    {
                        "type": "object",
                        "required": ["sessionId"],
                        "properties": {
                            "sessionId": _S,
                            "prevSummary": _S,
                            "messages": {"type": "array", "items": _MESSAGE},
                            "tokenBudget": _I,
                        },
                    }
                ),
            },
            "responses": {
                "200": {
                    "description": "the new version, or status empty with header X-Summary-Empty: 1",
                    **_json(
                        {"type": "object", "properties": {"sessionId": _S, "version": _I, "updatedAt": _I, "text": _S}}
                    ),
                },
                **_errors(400, 401, 403, 404, 409, 413, 415, 502, 503),
            },
        }
    },
}
