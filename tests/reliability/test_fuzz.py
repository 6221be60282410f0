"""Fuzzing: schemathesis drives the app in-process from its own `/openapi.json`, with and without a valid
bearer token: no 5xx, and every response matches the documented status codes, content types and schemas.

`FUZZ_EXAMPLES` examples per operation and auth mode (default 80: hypothesis stops early on small inputs; ≥ 1,000 requests in all).
The same document is also fuzzed on PostgreSQL (`FUZZ_PG_EXAMPLES`, default 25; NUL generation on), where a NUL
in stored text used to be a 500, and the inputs issue 16 found (NUL, unpaired surrogates, JSON 1,000 deep) are
replayed into every operation.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.conftest import TEST_HASH_SECRET
from tests.support.jwks import JwksServer

from .record import record

# the document's promises (5xx are judged below), documented statuses, content types, headers and bodies. (Schemathesis's
# positive/negative data checks are not used: the routes validate more than the document can say, e.g.
# that a groupId belongs to the session.)
CHECKS = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "80"))
PG_EXAMPLES = int(os.environ.get("FUZZ_PG_EXAMPLES", "25"))
# what issue 16's drills sent: each used to answer 500 on some route (PostgreSQL for the text ones)
BAD_TEXT = ("a\x00b", "\x00", "a\ud800b", "\udfff")
DEEP_JSON = "[" * 1000 + "]" * 1000


@pytest.fixture(scope="module")
def idp():
    server = JwksServer()
    yield server
    server.close()


def _app(idp, data, database_url: str = ""):
    """The in-process API on `database_url` (SQLite under `data` when empty) and its embedded broker server."""
    from coachup.settings import load_settings
    from web import create_app

    settings = load_settings(
        {
            "COACHUP_DATA_DIR": str(data),
            "COACHUP_DATABASE_URL": database_url,
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "COACHUP_ENV": "test",
            "SPEECH_WAIT_MS": "20",
            "CHAT_OFFLINE_FIRST_TOKEN_MS": "0",  # the offline coach unpaced: a fuzzed chat stream ends at once
            "CHAT_OFFLINE_TOKEN_MS": "0",
            **idp.env(),
        }
    )
    from tests.support.services import EmbeddedBrokerServer

    broker = EmbeddedBrokerServer(settings)  # the embedded broker's server, as `make run` starts it
    return create_app(settings, configure_logs=False), broker


@pytest.fixture(scope="module")
def fuzz_app(idp, tmp_path_factory):
    app, broker = _app(idp, tmp_path_factory.mktemp("fuzz"))
    yield app
    broker.close()


@pytest.fixture(scope="module")
def pg_fuzz_app(idp, tmp_path_factory):
    from tests.support.services import PostgresDatabase

    pg = PostgresDatabase()
    app, broker = _app(idp, tmp_path_factory.mktemp("fuzz-pg"), pg.url)
    yield app
    broker.close()
    app.extensions["coachup"].store.engine.dispose()
    pg.drop()


def _fuzz(app, headers: dict, examples: int = EXAMPLES) -> dict:
    """Every operation of the app's own document, `examples` generated cases each; counts by status class."""
    api = schemathesis.openapi.from_wsgi("/openapi.json", app)
    counts = {"requests": 0, "operations": 0, "2xx": 0, "4xx": 0, "5xx": 0, "501 unconfigured": 0}
    for result in api.get_all_operations():
        operation = result.ok()
        counts["operations"] += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case):
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            counts["requests"] += 1
            status = response.status_code
            if status == 501:  # documented: the offline app has no S3 bucket configured
                assert response.json()["error"]["type"] == "storage_unconfigured", response.text
                counts["501 unconfigured"] += 1
                return
            counts[f"{min(status // 100, 5)}xx" if status >= 400 else "2xx"] += 1
            assert status < 500, (case.method, case.path, status, response.text[:300])

        run()
    return counts


def test_with_a_valid_token_the_api_matches_its_document_and_never_answers_5xx(fuzz_app, idp):
    counts = _fuzz(fuzz_app, {"Authorization": f"Bearer {idp.token()}"})
    from web.openapi import SPEC

    assert counts["requests"] >= 500
    assert (
        counts["5xx"] == 0 and counts["operations"] == sum(len(ops) for ops in SPEC["paths"].values()) - 1
    )  # minus itself
    record("attack", "schemathesis fuzz, valid token", **counts)


def test_anonymous_requests_match_the_document_and_never_answer_5xx(fuzz_app):
    counts = _fuzz(fuzz_app, {})
    assert counts["5xx"] == 0 and counts["requests"] >= 500
    record("attack", "schemathesis fuzz, anonymous", **counts)


def test_on_postgresql_the_api_matches_its_document_and_never_answers_5xx(pg_fuzz_app, idp):
    counts = _fuzz(pg_fuzz_app, {"Authorization": f"Bearer {idp.token()}"}, examples=PG_EXAMPLES)
    assert counts["5xx"] == 0 and counts["requests"] >= 300
    record("attack", "schemathesis fuzz, valid token, PostgreSQL", **counts)


def _operations():
    from web.openapi import SPEC

    for path, ops in SPEC["paths"].items():
        for method, op in ops.items():
            if isinstance(op, dict) and method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, op


def _filled(path: str, value: str = "s1") -> str:
    import re

    return re.sub(r"\{[^}]+\}", value, path)


def test_on_postgresql_nul_surrogates_and_deep_json_never_answer_5xx(pg_fuzz_app, idp):
    """Every operation: each documented string property and query parameter set to each bad text in turn,
    each path parameter NUL, and (where a JSON body is taken) a 2 KB body nested 1,000 deep."""
    import json
    from urllib.parse import quote

    client = pg_fuzz_app.test_client()
    headers = {"Authorization": f"Bearer {idp.token()}"}
    counts = {"requests": 0, "4xx": 0, "2xx": 0, "5xx": 0}

    def send(method, url, **kw):
        resp = client.open(url, method=method, headers=headers, **kw)
        counts["requests"] += 1
        counts[f"{min(resp.status_code // 100, 5)}xx" if resp.status_code >= 400 else "2xx"] += 1
        assert resp.status_code < 500, (method, url, resp.status_code, resp.get_data(as_text=True)[:300])
        assert resp.is_json or resp.status_code < 400, (method, url, resp.get_data(as_text=True)[:200])

    for method, path, op in _operations():
        if "{" in path:
            send(method, _filled(path, "%00"))
        for param in op.get("parameters", []):
            if param.get("in") == "query":
                for bad in BAD_TEXT:
                    send(method, f"{_filled(path)}?{param['name']}={quote(bad, errors='surrogatepass')}")
        body = ((op.get("requestBody") or {}).get("content") or {}).get("application/json")
        if body is None:
            continue
        send(method, _filled(path), data=DEEP_JSON, content_type="application/json")
        props = (body.get("schema") or {}).get("properties") or {}
        base = {"sessionId": "s1", "messageId": "m1", "role": "user", "content": "hello", "text": "hello"}
        for name in props:
            for bad in BAD_TEXT:
                doc = {**base, name: bad}
                send(method, _filled(path), data=json.dumps(doc), content_type="application/json")
    assert counts["requests"] >= 100 and counts["5xx"] == 0
    record("attack", "issue 16 inputs (NUL, surrogates, 1,000-deep JSON), PostgreSQL", **counts)
