"""The OpenAPI document describes what the API really answers: responses of the front end's calls, from a
real run (in-process, the assessment job run by its real task), validate against the documented schemas."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from tests.web.test_frontend_api import CLOSING_REPLY, USER_TURNS, _run_job


@pytest.fixture
def client(offline_settings):
    from web import create_app

    return create_app(offline_settings, configure_logs=False).test_client()


def to_json_schema(node, components: dict):
    """An OpenAPI 3.0 schema as JSON Schema: `$ref`s inlined, `nullable: true` as `anyOf [null, ...]`."""
    if isinstance(node, list):
        return [to_json_schema(n, components) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return to_json_schema(copy.deepcopy(components[node["$ref"].rsplit("/", 1)[1]]), components)
    out = {k: to_json_schema(v, components) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return {"anyOf": [{"type": "null"}, out]}
    return out


def _schema(doc: dict, path: str, method: str, status: str) -> dict:
    response = doc["paths"][path][method]["responses"][status]
    return to_json_schema(response["content"]["application/json"]["schema"], doc["components"]["schemas"])


def _check(doc, path, method, resp):
    assert resp.is_json, resp.data[:200]
    jsonschema.validate(resp.get_json(), _schema(doc, path, method, str(resp.status_code)))


def test_real_responses_match_the_documented_schemas(client):
    doc = client.get("/openapi.json").get_json()
    base = {"sessionId": "sess-doc", "ts": 1_764_000_000_000}
    ingest = "/messages/ingest"
    for i, text in enumerate(USER_TURNS):
        resp = client.post(ingest, json={**base, "messageId": f"u{i}", "role": "user", "content": text})
        _check(doc, ingest, "post", resp)
    reply = client.post(ingest, json={**base, "messageId": "a", "role": "assistant", "content": CLOSING_REPLY})
    _check(doc, ingest, "post", reply)
    _check(doc, "/assessments/{sessionId}", "get", client.get("/assessments/sess-doc"))  # queued, no summary

    _run_job(client, reply.get_json()["taskId"])
    done = client.get("/assessments/sess-doc")
    assert done.get_json()["summary"]["skillAssessments"]
    _check(doc, "/assessments/{sessionId}", "get", done)
    _check(
        doc,
        "/assessments/{sessionId}",
        "get",
        client.get("/assessments/sess-doc", headers={"X-Tracked-Skill-Id": "conciseness"}),
    )
    _check(doc, "/service-metrics", "get", client.get("/service-metrics"))
    _check(doc, "/chat/tracked-skills", "get", client.get("/chat/tracked-skills?session_id=sess-doc"))
    _check(doc, "/assessments/run", "post", client.post("/assessments/run?sessionId=sess-doc"))


def test_the_schemas_are_not_a_rubber_stamp(client):
    doc = client.get("/openapi.json").get_json()
    view = _schema(doc, "/assessments/{sessionId}", "get", "200")
    good = {
        "sessionId": "s",
        "latestGroupId": None,
        "groupId": None,
        "status": None,
        "summary": None,
        "pendingGroupId": None,
        "pendingStatus": None,
    }
    jsonschema.validate(good, view)
    for bad in ({**good, "status": "open"}, {**good, "summary": {"skillAssessments": "x"}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, view)
    item = to_json_schema(doc["components"]["schemas"]["SkillAssessment"], doc["components"]["schemas"])
    ok = {
        "skill": {"id": "a", "name": "A"},
        "skillId": "a",
        "level": 3,
        "metCriteria": [],
        "unmetCriteria": [],
        "feedback": [],
    }
    jsonschema.validate(ok, item)
    for bad in ({**ok, "feedback": "one string"}, {**ok, "level": 11}, {k: v for k, v in ok.items() if k != "skill"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, item)
