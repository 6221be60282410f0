"""The OpenAPI 3 document of every route (`GET /openapi.json`); a test keeps it equal to the URL map."""

from __future__ import annotations

from flask import Blueprint

from .openapi_frontend import COMPONENTS, FRONTEND_PATHS, ref

bp = Blueprint("openapi", __name__)

_ERROR = {"$ref": "#/components/schemas/Error"}
_REQUEST_ID = {
    "name": "x-request-id",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"},
    "description": "any safe opaque id (a UUID, the front end's base36 ids); a new UUIDv4 when absent or "
    "unsafe; echoed on the response and carried to the worker",
}
_TRACKED_SKILL = {
    "name": "x-tracked-skill-id",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "keep only this skill's items in summary.skillAssessments (the skill page)",
}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    return {str(c): {"description": "error", **_json(_ERROR)} for c in codes}


#: the 503 of a route that starts work: it never waits on the broker (the outbox relay publishes the committed job)
STORE_DOWN = {
    "503": {
        "description": "store_unavailable: the store could not be reached and nothing was stored (retry). A broker "
        "outage is never a 503: the job row is committed and the outbox relay publishes it when the broker is back",
        **_json(_ERROR),
    }
}


_TURN = {
    "type": "object",
    "required": ["content"],
    "properties": {
        "role": {"type": "string", "enum": ["user", "assistant", "system"]},
        "content": {"type": "string", "minLength": 1, "maxLength": 20000},
        "ts": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]},
        "messageId": {"type": "string"},
    },
}

_ADMIN = [
    {
        "name": "x-admin-token",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "COACHUP_ADMIN_TOKEN (without a JWKS, `Authorization: Bearer <token>` works too)",
    }
]
_FILTERS = {
    "task": {"type": "string", "description": "task name or `prefix.*`"},
    "error": {"type": "string", "description": "error type or reason"},
}
_LETTER = {
    "type": "object",
    "properties": {
        k: {"type": "string"}
        for k in (
            "id",
            "task_id",
            "task",
            "queue",
            "reason",
            "error_type",
            "error_message",
            "first_failure_at",
            "last_failure_at",
            "worker",
        )
    },
}
_OPS_PATHS: dict = {
    "/api/v1/ops/queues": {
        "get": {
            "summary": "Messages waiting per queue and stored dead letters (admin)",
            "parameters": _ADMIN,
            "responses": {
                "200": {
                    "description": "depths",
                    **_json(
                        {
                            "type": "object",
                            "properties": {
                                "broker": {"type": "string"},
                                "queues": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {"name": {"type": "string"}, "depth": {"type": "integer"}},
                                    },
                                },
                                "deadLetters": {
                                    "type": "object",
                                    "description": "The one dead-letter depth: stored letters plus letters waiting in "
                                    "the broker (inBroker is null on /ops/deadletters when the broker is unreachable)",
                                    "properties": {
                                        "depth": {"type": "integer"},
                                        "stored": {"type": "integer"},
                                        "inBroker": {"type": ["integer", "null"]},
                                        "counts": {"type": "string"},
                                    },
                                },
                            },
                        }
                    ),
                },
                **_errors(401, 403, 503),
            },
        }
    },
    "/api/v1/ops/deadletters": {
        "get": {
            "summary": "Dead letters, newest first, without consuming them (admin)",
            "parameters": _ADMIN
            + [{"name": k, "in": "query", "schema": v} for k, v in _FILTERS.items()]
            + [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
            "responses": {
                "200": {
                    "description": "dead letters",
                    **_json(
                        {
                            "type": "object",
                            "properties": {
                                "depth": {"type": "integer"},
                                "stored": {"type": "integer"},
                                "inBroker": {"type": ["integer", "null"]},
                                "counts": {"type": "string"},
                                "items": {"type": "array", "items": _LETTER},
                            },
                        }
                    ),
                },
                **_errors(400, 401, 403, 501, 503),
            },
        }
    },
    "/api/v1/ops/deadletters/redrive": {
        "post": {
            "summary": "Move matching dead letters back to their queues (admin)",
            "parameters": _ADMIN,
            "requestBody": {
                "required": False,
                **_json(
                    {
                        "type": "object",
                        "properties": {
                            **_FILTERS,
                            "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                            "dryRun": {"type": "boolean"},
                            "includePermanent": {"type": "boolean"},
                        },
                    }
                ),
            },
            "responses": {
                "200": {
                    "description": "redrive report",
                    **_json(
                        {
                            "type": "object",
                            "properties": {
                                k: {"type": "integer"} for k in ("selected", "redriven", "held", "keptPermanent")
                            },
                        }
                    ),
                },
                **_errors(400, 401, 403, 415, 501, 503),
            },
        }
    },
}

SPEC: dict = {
    "openapi": "3.0.3",
    "info": {
        "title": "Coach Up jobs API",
        "version": "0.1.0",
        "description": "Intake, assessment jobs and health of the Coach Up job backbone.",
    },
    "paths": {
        "/messages/ingest": {
            "post": {
                "summary": "Store a transcript turn once; close its group on a closing cue, max turns or end:true",
                "parameters": [_REQUEST_ID],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["sessionId", "messageId", "role", "content"],
                            "properties": {
                                "sessionId": {"type": "string"},
                                "messageId": {"type": "string"},
                                "role": {"type": "string", "enum": ["user", "assistant", "system"]},
                                "content": {"type": "string", "minLength": 1, "maxLength": 20000},
                                "ts": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]},
                                "groupId": {"type": "string"},
                                "end": {"type": "boolean"},
                                "trackedSkills": ref("TrackedSkillIds"),
                            },
                        }
                    ),
                },
                "responses": {
                    "200": {"description": "stored (or deduped)", **_json(ref("IngestResult"))},
                    **_errors(400, 404, 409, 413, 415),
                    **STORE_DOWN,
                },
            }
        },
        "/assessments/run": {
            "post": {
                "summary": "Queue the assessment of a group (sessionId from JSON, form or query)",
                "parameters": [_REQUEST_ID, {"name": "sessionId", "in": "query", "schema": {"type": "string"}}],
                "requestBody": {
                    "required": False,
                    **_json(
                        {
                            "type": "object",
                            "properties": {
                                "sessionId": {"type": "string"},
                                "groupId": {"type": "string"},
                                "transcript": {"type": "array", "items": _TURN, "maxItems": 200},
                                "trackedSkills": ref("TrackedSkillIds"),
                            },
                        }
                    ),
                },
                "responses": {
                    "202": {
                        "description": "accepted: the job is committed and will run (the answer never waits on the "
                        "broker)",
                        **_json(
                            {
                                "type": "object",
                                "properties": {
                                    "groupId": {"type": "string"},
                                    "taskId": {"type": "string"},
                                    "status": {"type": "string", "enum": ["accepted"]},
                                },
                            }
                        ),
                    },
                    **_errors(400, 404, 409, 413, 415),
                    **STORE_DOWN,
                },
            }
        },
        "/assessments/{sessionId}": {
            "get": {
                "summary": "The latest finished assessment of a session (or ?groupId=), and the one in progress",
                "parameters": [
                    {"name": "sessionId", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "groupId", "in": "query", "schema": {"type": "string"}},
                    _REQUEST_ID,
                    _TRACKED_SKILL,
                ],
                "responses": {
                    "200": {"description": "summary and status", **_json(ref("AssessmentView"))},
                    **_errors(400, 404),
                },
            }
        },
        "/api/v1/jobs/{taskId}": {
            "get": {
                "summary": "State of any job",
                "parameters": [{"name": "taskId", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "job",
                        **_json(
                            {
                                "type": "object",
                                "properties": {
                                    "taskId": {"type": "string"},
                                    "kind": {"type": "string"},
                                    "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
                                },
                            }
                        ),
                    },
                    **_errors(400, 404),
                },
            }
        },
        **_OPS_PATHS,
        "/health": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/api/health": {
            "get": {
                "summary": "Broker, store and result backend, each with status and latency_ms",
                "responses": {"200": {"description": "healthy"}, "503": {"description": "a dependency is down"}},
            }
        },
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3"}}}},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of every API worker process",
                "responses": {"200": {"description": "Prometheus text exposition"}},
            }
        },
        "/api/metrics": {
            "get": {
                "summary": "The same metrics as JSON, for humans",
                "responses": {
                    "200": {
                        "description": "metrics by family",
                        **_json(
                            {
                                "type": "object",
                                "properties": {"timestamp": {"type": "string"}, "metrics": {"type": "object"}},
                            }
                        ),
                    }
                },
            }
        },
    },
    "components": {
        "schemas": {
            **COMPONENTS,
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["type", "message"],
                        "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            },
        }
    },
}

from .openapi_speech import SPEECH_PATHS  # noqa: E402  (speech, storage, skills, transcripts)

SPEC["paths"].update(SPEECH_PATHS)
SPEC["paths"].update(FRONTEND_PATHS)
from .openapi_chat import CHAT_PATHS  # noqa: E402  (chat stream, session summaries)

SPEC["paths"].update(CHAT_PATHS)


@bp.get("/openapi.json")
def openapi_document():
    return SPEC


from .openapi_security import secure  # noqa: E402  (bearer JWT on every non-public operation)

secure(SPEC)
