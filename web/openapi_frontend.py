"""OpenAPI components of what the front end reads (the summary of CONTRACTS.md §1, the ingest answer, the
assessment view) and the paths added for it. `tests/web/test_openapi_responses.py` validates real
responses against these schemas, so the document cannot drift from what the API answers.

The schemas require what the front end depends on and describe the rest; extra fields are allowed, as a
client must ignore fields it does not know.
"""

from __future__ import annotations

__all__ = ["COMPONENTS", "FRONTEND_PATHS", "ref"]

CATEGORIES = ("correctness", "clarity", "conciseness", "fluency")
GROUP_STATUSES = ["active", "pending", "queued", "running", "done", "failed"]


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _strings(description: str) -> dict:
    return {"type": "array", "items": {"type": "string"}, "description": description}


_SCORES = {
    "type": "object",
    "description": "0..1 per rubric category",
    "properties": {c: {"type": "number", "minimum": 0, "maximum": 1} for c in CATEGORIES},
}

COMPONENTS: dict = {
    "Scores": _SCORES,
    "SkillRef": {
        "type": "object",
        "required": ["id", "name"],
        "properties": {
            "id": {
                "type": "string",
                "description": "the catalogue id; the skill page keeps items whose skill.id is its own",
            },
            "name": {"type": "string"},
            "category": {"type": "string", "nullable": True},
        },
    },
    "SkillAssessment": {
        "type": "object",
        "required": ["skill", "skillId", "level", "metCriteria", "unmetCriteria", "feedback"],
        "properties": {
            "skill": ref("SkillRef"),
            "skillId": {"type": "string", "description": "== skill.id, kept for older readers"},
            "rubricHash": {"type": "string", "description": "sha256 of (rubric version, id, criteria)"},
            "status": {"type": "string", "enum": ["assessed", "insufficient_evidence"]},
            "level": {
                "type": "integer",
                "minimum": 0,
                "maximum": 10,
                "nullable": True,
                "description": "the front end's 0..10 scale; null when there was not enough speech",
            },
            "scores": {**_SCORES, "nullable": True},
            "metCriteria": _strings("criteria met, as sentences"),
            "unmetCriteria": _strings("criteria not met, as sentences"),
            "criteria": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "text": {"type": "string"},
                        "met": {"type": "boolean", "nullable": True},
                    },
                },
            },
            "feedback": _strings("feedback sentences (always a list)"),
            "highlights": _strings("what went well"),
            "recommendations": _strings("what to try next"),
            "message": {"type": "string", "nullable": True},
        },
    },
    "SummaryMeta": {
        "type": "object",
        "required": ["tokensIn", "tokensOut", "costUsd", "latencyMsTotal", "messageCount"],
        "properties": {
            "provider": {"type": "string"},
            "model": {"type": "string"},
            "skillsCount": {"type": "integer", "minimum": 0},
            "tokensIn": {"type": "integer", "minimum": 0},
            "tokensOut": {"type": "integer", "minimum": 0},
            "costUsd": {"type": "number", "minimum": 0},
            "latencyMsTotal": {"type": "integer", "minimum": 0},
            "messageCount": {"type": "integer", "minimum": 0},
            "durationMs": {"type": "integer", "minimum": 0, "nullable": True, "description": "from the turns' ts"},
            "slice": {"type": "object"},
            "evidence": {"type": "object"},
        },
    },
    "Summary": {
        "type": "object",
        "description": "One group's assessment (CONTRACTS.md §1).",
        "required": ["rubricVersion", "scores", "skillAssessments", "highlights", "recommendations", "meta", "errors"],
        "properties": {
            "rubricVersion": {"type": "string", "description": "`v2`"},
            "categories": _strings(f"the four rubric categories: {', '.join(CATEGORIES)}"),
            "status": {"type": "string", "enum": ["assessed", "insufficient_evidence", "skipped"]},
            "scores": {**_SCORES, "nullable": True, "description": "group means over the assessed skills"},
            "skillAssessments": {"type": "array", "items": ref("SkillAssessment")},
            "highlights": _strings("at most 3"),
            "recommendations": _strings("at most 3"),
            "meta": ref("SummaryMeta"),
            "errors": {
                "type": "array",
                "items": {"type": "object", "properties": {"skillId": {"type": "string"}, "error": {"type": "string"}}},
            },
        },
    },
    "AssessmentView": {
        "type": "object",
        "required": ["sessionId", "latestGroupId", "groupId", "status", "summary", "pendingGroupId", "pendingStatus"],
        "properties": {
            "sessionId": {"type": "string"},
            "latestGroupId": {
                "type": "string",
                "nullable": True,
                "description": "the group whose assessment finished most recently (done or failed); "
                "the response that first names it carries its summary",
            },
            "groupId": {"type": "string", "nullable": True, "description": "the group `status`/`summary` describe"},
            "status": {"type": "string", "enum": GROUP_STATUSES, "nullable": True},
            "summary": {"allOf": [ref("Summary")], "nullable": True},
            "taskId": {"type": "string"},
            "error": {"type": "object", "properties": {"type": {"type": "string"}, "message": {"type": "string"}}},
            "pendingGroupId": {
                "type": "string",
                "nullable": True,
                "description": "the session's newest group while it is not finished",
            },
            "pendingStatus": {"type": "string", "enum": GROUP_STATUSES[:4], "nullable": True},
        },
    },
    "IngestResult": {
        "type": "object",
        "required": ["state", "groupId", "turnCount", "enqueued", "deduped"],
        "properties": {
            "state": {
                "type": "string",
                "enum": ["active", "idle"],
                "description": "active while the interaction goes on; idle once it ended",
            },
            "groupId": {"type": "string"},
            "turnCount": {"type": "integer", "minimum": 1},
            "enqueued": {"type": "boolean", "description": "this turn queued the group's assessment"},
            "deduped": {"type": "boolean", "description": "this messageId was stored before"},
            "closeReason": {
                "type": "string",
                "enum": ["closing_cue", "max_turns", "explicit", "idle", "superseded"],
                "description": "why the group ended: a closing turn, the turn limit, `end: true`, the idle timeout "
                "(the scheduler's sweep), or a turn that named a new group (`superseded`)",
            },
            "taskId": {"type": "string"},
        },
    },
    "TrackedSkillIds": {
        "type": "array",
        "maxItems": 20,
        "description": "skill ids of the catalogue (or `{skillId}` objects); remembered for the session",
        "items": {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"skillId": {"type": "string"}}}]},
    },
    "CatalogueSkillRecord": {
        "type": "object",
        "required": ["title", "category", "description", "criteria"],
        "properties": {
            "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
            "title": {"type": "string", "maxLength": 200},
            "category": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
            "description": {"type": "string", "maxLength": 2000},
            "criteria": {
                "type": "array",
                "minItems": 1,
                "maxItems": 20,
                "items": {"type": "string"},
                "description": "criterion ids from GET /api/v1/ops/skills/criteria",
            },
        },
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
_ERR = {"description": "error", **_json({"$ref": "#/components/schemas/Error"})}

FRONTEND_PATHS: dict = {
    "/service-metrics": {
        "get": {
            "summary": "Assessment queue depth, worker pool slots, sessions and stored results (None: unknown)",
            "responses": {
                "200": {
                    "description": "numbers",
                    **_json(
                        {
                            "type": "object",
                            "required": ["queueDepth", "workerConcurrency", "sessionCount", "resultsCount"],
                            "properties": {
                                k: {"type": "integer", "nullable": True, "minimum": 0}
                                for k in ("queueDepth", "workerConcurrency", "sessionCount", "resultsCount")
                            },
                        }
                    ),
                }
            },
        }
    },
    "/chat/tracked-skills": {
        "get": {
            "summary": "The skills a session is assessed on (its own choice, else COACHUP_DEFAULT_SKILLS)",
            "parameters": [{"name": "session_id", "in": "query", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {
                    "description": "skills",
                    **_json(
                        {
                            "type": "object",
                            "required": ["skills"],
                            "properties": {
                                "sessionId": {"type": "string"},
                                "skills": {"type": "array", "items": ref("SkillRef")},
                                "source": {"type": "string", "enum": ["session", "default"]},
                            },
                        }
                    ),
                },
                "400": _ERR,
                "404": _ERR,
            },
        }
    },
    "/api/v1/ops/skills/criteria": {
        "get": {
            "summary": "The criteria a catalogue skill may use (admin)",
            "parameters": _ADMIN,
            "responses": {
                "200": {
                    "description": "criteria",
                    **_json(
                        {
                            "type": "object",
                            "properties": {
                                "criteria": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {"id": {"type": "string"}, "text": {"type": "string"}},
                                    },
                                }
                            },
                        }
                    ),
                },
                "401": _ERR,
                "403": _ERR,
            },
        }
    },
    "/api/v1/ops/skills/{skillId}": {
        "put": {
            "summary": "Add or update one catalogue skill (admin)",
            "parameters": [*_ADMIN, {"name": "skillId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, **_json(ref("CatalogueSkillRecord"))},
            "responses": {
                "200": {"description": "updated or unchanged", **_json({"type": "object"})},
                "201": {"description": "created", **_json({"type": "object"})},
                **{str(c): _ERR for c in (400, 401, 403, 415)},
            },
        }
    },
    "/api/v1/ops/skills/sync": {
        "post": {
            "summary": "Upsert a whole catalogue in one transaction; optionally retire unlisted skills (admin)",
            "parameters": _ADMIN,
            "requestBody": {
                "required": True,
                **_json(
                    {
                        "type": "object",
                        "required": ["skills"],
                        "properties": {
                            "skills": {"type": "array", "items": ref("CatalogueSkillRecord"), "maxItems": 500},
                            "deactivateMissing": {"type": "boolean"},
                        },
                    }
                ),
            },
            "responses": {
                "200": {
                    "description": "what changed",
                    **_json(
                        {
                            "type": "object",
                            "properties": {
                                **{k: {"type": "integer"} for k in ("created", "updated", "unchanged", "deactivated")},
                                "ids": {"type": "object"},
                            },
                        }
                    ),
                },
                **{str(c): _ERR for c in (400, 401, 403, 415)},
            },
        }
    },
}
