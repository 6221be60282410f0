"""OpenAPI paths of the speech, storage, skills and transcripts routes (merged into `web.openapi.SPEC`)."""

from __future__ import annotations

__all__ = ["SPEECH_PATHS"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_AUDIO_TYPES = ["audio/webm", "audio/wav", "audio/mpeg", "audio/mp4", "audio/x-m4a"]
_S, _I, _N, _B = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    return {str(c): {"description": "error", **_json(_ERROR)} for c in codes}


def _obj(**props) -> dict:
    return {"type": "object", "properties": props}


_ACCEPTED = {
    "description": "queued (the job is committed and will run; the answer never waits on the broker); poll statusUrl",
    **_json(_obj(jobId=_S, status=_S, statusUrl=_S)),
}
_STORE_DOWN = {
    "503": {
        "description": "store_unavailable: nothing was stored (retry); a broker outage is never a 503 (the outbox "
        "relay publishes the committed job when the broker is back)",
        **_json(_ERROR),
    }
}
_PRESIGNED = _json(
    _obj(
        url=_S,
        method={"type": "string", "enum": ["PUT", "GET"]},
        headers={"type": "object"},
        expiresAt={"type": "string", "format": "date-time"},
        objectKey=_S,
    )
)
_WAIT = {
    "name": "wait",
    "in": "query",
    "schema": {"type": "boolean", "default": True},
    "description": "false: answer 202 at once; else wait up to SPEECH_WAIT_MS",
}

SPEECH_PATHS: dict = {
    "/api/v1/stt": {
        "post": {
            "summary": "Transcribe audio (multipart `audio` or JSON audioUrl | objectKey) on the stt queue",
            "parameters": [_WAIT],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": _obj(
                            audio={"type": "string", "format": "binary"},
                            sessionId=_S,
                            groupId=_S,
                            languageHint=_S,
                            provider=_S,
                        )
                    },
                    "application/json": {
                        "schema": _obj(
                            audioUrl={"type": "string", "format": "uri"},
                            objectKey=_S,
                            sessionId=_S,
                            groupId=_S,
                            languageHint=_S,
                            provider=_S,
                            wait=_B,
                        )
                    },
                },
            },
            "responses": {
                "200": {
                    "description": "transcript",
                    **_json(
                        _obj(
                            provider=_S,
                            text=_S,
                            confidence=_N,
                            language=_S,
                            model=_S,
                            sessionId=_S,
                            groupId=_S,
                            objectKey=_S,
                            sttCostCents=_N,
                            sttDurationMs=_I,
                        )
                    ),
                },
                "202": _ACCEPTED,
                **_errors(400, 404, 413, 415, 501, 502),
                **_STORE_DOWN,
            },
        }
    },
    "/api/v1/tts": {
        "post": {
            "summary": "Synthesize speech on the tts queue",
            "parameters": [_WAIT],
            "requestBody": {
                "required": True,
                **_json(
                    {
                        "type": "object",
                        "required": ["text"],
                        "properties": {
                            "text": {"type": "string", "minLength": 1},
                            "voiceId": _S,
                            "format": {"type": "string", "enum": ["audio/wav", "audio/mpeg"]},
                            "sessionId": _S,
                            "groupId": _S,
                            "provider": _S,
                            "wait": _B,
                        },
                    }
                ),
            },
            "responses": {
                "200": {
                    "description": "audio made",
                    **_json(
                        _obj(
                            provider=_S,
                            voiceId=_S,
                            format=_S,
                            audioUrl=_S,
                            durationMs=_I,
                            ttsCostCents=_N,
                            ttsCharacters=_I,
                            uploaded=_B,
                        )
                    ),
                },
                "202": _ACCEPTED,
                **_errors(400, 404, 413, 415, 501, 502),
                **_STORE_DOWN,
            },
        }
    },
    "/api/v1/tts/audio/{jobId}": {
        "get": {
            "summary": "The audio of a finished TTS job",
            "parameters": [{"name": "jobId", "in": "path", "required": True, "schema": _S}],
            "responses": {
                "200": {"description": "audio", "content": {t: {} for t in ("audio/wav", "audio/mpeg")}},
                **_errors(400, 404, 409),
            },
        }
    },
    "/api/v1/storage/audio/presign": {
        "post": {
            "summary": "A presigned PUT URL (15 min) for one audio upload",
            "requestBody": {
                "required": True,
                **_json(
                    {
                        "type": "object",
                        "required": ["contentType", "sizeBytes"],
                        "properties": {
                            "contentType": {"type": "string", "enum": _AUDIO_TYPES},
                            "sizeBytes": {"type": "integer", "minimum": 1},
                        },
                    }
                ),
            },
            "responses": {"200": {"description": "presigned", **_PRESIGNED}, **_errors(400, 401, 413, 415, 501)},
        },
        "get": {
            "summary": "A presigned GET URL (15 min) for ?objectKey=",
            "parameters": [{"name": "objectKey", "in": "query", "required": True, "schema": _S}],
            "responses": {"200": {"description": "presigned", **_PRESIGNED}, **_errors(400, 401, 404, 501)},
        },
    },
    "/api/v1/skills": {
        "get": {
            "summary": "The skills catalogue, or one skill by ?id=, or one ?category=",
            "parameters": [
                {"name": "id", "in": "query", "schema": _S},
                {"name": "category", "in": "query", "schema": _S},
            ],
            "responses": {
                "200": {"description": "skills", **_json(_obj(skills={"type": "array"}, skill={"type": "object"}))},
                **_errors(400, 404),
            },
        }
    },
    "/api/v1/transcripts": {
        "get": {
            "summary": "Stored turns of a session (and group), oldest first, cursor-paginated",
            "parameters": [
                {"name": "sessionId", "in": "query", "required": True, "schema": _S},
                {"name": "groupId", "in": "query", "schema": _S},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                },
                {"name": "cursor", "in": "query", "schema": _S},
            ],
            "responses": {
                "200": {
                    "description": "a page",
                    **_json(
                        _obj(
                            sessionId=_S,
                            groupId={"type": "string", "nullable": True},
                            items={"type": "array"},
                            nextCursor={"type": "string", "nullable": True},
                        )
                    ),
                },
                **_errors(400, 404),
            },
        }
    },
}
