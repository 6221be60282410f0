"""Fuzzing: schemathesis drives the app in-process from its own `/openapi.json`, with and without a valid
bearer token: no 5xx, every 4xx a JSON `{"error": {"type", "message"}}`, and every response matches the
documented status codes, content types and schemas.

Authenticated runs send a JWT from the test identity provider (and, on the ops routes, the admin token beside
it), so requests reach the route handlers: not one answers 401 or 403. They cover every route of the app's url
map (each documented operation fuzzed, plus `/openapi.json` itself, which schemathesis leaves out), on SQLite
and on PostgreSQL. Strings are generated with NUL (`allow_x00`); schemathesis never generates an unpaired
surrogate (it cannot go on the wire as UTF-8), so one in four JSON bodies gets one spliced into a string,
which JSON carries as a `\\udXXX` escape. The counts of both are recorded and must be non-zero.

`FUZZ_EXAMPLES` examples per operation and auth mode (default 80: hypothesis stops early on small inputs;
>= 1,000 requests in all). PostgreSQL: `FUZZ_PG_EXAMPLES`, default 25, where a NUL in stored text used to be
a 500; the inputs issue 16 found (NUL, unpaired surrogates, JSON 1,000 deep) are also replayed into every
operation.
"""

from __future__ import annotations

import os
import re
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
SURROGATES = ("\ud800", "\udfff", "\udbff")
ADMIN_TOKEN = "fuzz-admin-token-7f3a"


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
            "COACHUP_ADMIN_TOKEN": ADMIN_TOKEN,  # the ops routes answer their handlers, not 403 unconfigured
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


def _url_map_routes(app) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every rule of the app's url map but Flask's static files."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: "{" + _camel(m.group(1)) + "}", rule.rule)
        routes |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def _is_admin(operation) -> bool:
    return any(p.get("name") == "x-admin-token" for p in operation.definition.raw.get("parameters", []))


def _strings(value, path=()):
    """Paths to every string leaf of a JSON value."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False


def _splice(value, path, text: str):
    if not path:
        return value[: len(value) // 2] + text + value[len(value) // 2 :]
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _splice(value[head], rest, text)
    return copy


def _check_envelope(what: tuple, content_type: str, body) -> None:
    """A 4xx is the JSON error envelope: {"error": {"type": str, "message": str}}."""
    assert content_type.startswith("application/json"), what
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), what
    assert isinstance(error.get("type"), str) and error["type"], what
    assert isinstance(error.get("message"), str), what


def _send_spliced(client, case, headers: dict):
    """`case` with its JSON body serialized ASCII-escaped (a lone surrogate as `\\udXXX`), through the test
    client: (status, content type, JSON or None, text)."""
    import json

    resp = client.open(
        case.formatted_path,
        method=case.method,
        query_string=case.query or None,
        headers={**{k: str(v) for k, v in (case.headers or {}).items()}, **headers},
        data=json.dumps(case.body),
        content_type="application/json",
    )
    return resp.status_code, resp.content_type or "", resp.get_json(silent=True), resp.get_data(as_text=True)


def _fuzz(app, idp=None, examples: int = EXAMPLES) -> dict:
    """Every operation of the app's own document, `examples` generated cases each (and `/openapi.json` once);
    with `idp`, each request carries a valid token (and the admin token on the ops routes). Counts by status
    class, the requests that carried a NUL or an unpaired surrogate, and the routes fuzzed."""
    api = schemathesis.openapi.from_wsgi("/openapi.json", app)
    api.config.generation.update(allow_x00=True)
    token = idp.token(exp=int(time.time()) + 3600) if idp else None
    # no "5xx" count: the assertion below stops the run at the first one, so it could only ever read 0
    counts = {"requests": 0, "operations": 0, "2xx": 0, "4xx": 0, "401/403": 0, "unconfigured501": 0}
    counts |= {"withNul": 0, "withSurrogate": 0}
    fuzzed: set[tuple[str, str]] = set()
    client = app.test_client()

    def _fuzz_operation(operation, headers: dict) -> None:
        # the splice draws only where there is a JSON body: on other operations they would keep hypothesis
        # generating past the few inputs an operation without parameters has
        json_body = any(b.media_type == "application/json" for b in operation.body)

        @given(
            case=operation.as_strategy(),
            splice=st.integers(0, 3) if json_body else st.just(1),
            at=st.integers(0, 10**6) if json_body else st.just(0),
            bad=st.sampled_from(SURROGATES),
        )
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case, splice, at, bad):
            leaves = list(_strings(case.body)) if case.media_type == "application/json" else []
            if _has_nul((case.body, case.query, case.path_parameters, case.headers)):
                counts["withNul"] += 1
            if splice == 0 and leaves:
                # schemathesis writes JSON as UTF-8, which cannot carry a lone surrogate: send it escaped
                case.body = _splice(case.body, leaves[at % len(leaves)], bad)
                counts["withSurrogate"] += 1
                status, content_type, body, text = _send_spliced(client, case, headers)
                if token:  # the input guard refuses it before any handler reads it
                    assert status == 400 and (body or {}).get("error", {}).get("type") == "invalid_text", text
            else:
                response = case.call_and_validate(headers=headers, checks=CHECKS)
                status, content_type = response.status_code, response.headers.get("content-type", [""])[0]
                text = response.text
                body = response.json() if content_type.startswith("application/json") else None
            counts["requests"] += 1
            what = (case.method, case.path, status, text[:300])
            assert status < 500 or status == 501, what
            if status >= 400:
                _check_envelope(what, content_type, body)
            if status in (401, 403):
                counts["401/403"] += 1
            if status == 501:  # documented: the offline app has no S3 bucket configured
                assert body["error"]["type"] == "storage_unconfigured", text
                counts["unconfigured501"] += 1
                return
            counts["4xx" if status >= 400 else "2xx"] += 1

        run()

    for result in api.get_all_operations():
        operation = result.ok()
        counts["operations"] += 1
        fuzzed.add((operation.method.upper(), operation.path))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if token and _is_admin(operation):
            headers["x-admin-token"] = ADMIN_TOKEN
        _fuzz_operation(operation, headers)

    # the document itself: schemathesis does not list the operation it was loaded from
    doc = client.get("/openapi.json", headers={"Authorization": f"Bearer {token}"} if token else {})
    assert doc.status_code == 200 and doc.is_json
    counts["requests"] += 1
    counts["2xx"] += 1
    fuzzed.add(("GET", "/openapi.json"))
    counts["routes"] = len(fuzzed)
    assert fuzzed == _url_map_routes(app), "a route the fuzz does not reach: document it (web/openapi*.py)"
    return counts


@pytest.mark.drill  # 20-40 s on two loaded cores; the PostgreSQL run below is the fast suite's authenticated fuzz
def test_with_a_valid_token_every_route_answers_its_handler_per_the_document_and_never_5xx(fuzz_app, idp):
    counts = _fuzz(fuzz_app, idp)
    assert counts["requests"] >= 500
    assert counts.pop("401/403") == 0, counts  # past the auth wall: every answer is the handler's
    assert counts["withNul"] > 0 and counts["withSurrogate"] > 0, counts
    record("attack", "schemathesis fuzz, valid token", **counts)


@pytest.mark.drill  # 20-25 s on two loaded cores
def test_anonymous_requests_match_the_document_and_never_answer_5xx(fuzz_app):
    counts = _fuzz(fuzz_app)
    assert counts["requests"] >= 500
    record("attack", "schemathesis fuzz, anonymous", **counts)


def test_on_postgresql_with_a_valid_token_every_route_answers_its_handler_and_never_5xx(pg_fuzz_app, idp):
    counts = _fuzz(pg_fuzz_app, idp, examples=PG_EXAMPLES)
    assert counts["requests"] >= 300
    assert counts.pop("401/403") == 0, counts
    assert counts["withNul"] > 0 and counts["withSurrogate"] > 0, counts
    record("attack", "schemathesis fuzz, valid token, PostgreSQL", **counts)


def _operations():
    from web.openapi import SPEC

    for path, ops in SPEC["paths"].items():
        for method, op in ops.items():
            if isinstance(op, dict) and method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, op


def _filled(path: str, value: str = "s1") -> str:

    return re.sub(r"\{[^}]+\}", value, path)


def test_on_postgresql_nul_surrogates_and_deep_json_never_answer_5xx(pg_fuzz_app, idp):
    """Every operation: each documented string property and query parameter set to each bad text in turn,
    each path parameter NUL, and (where a JSON body is taken) a 2 KB body nested 1,000 deep."""
    import json
    from urllib.parse import quote

    client = pg_fuzz_app.test_client()
    headers = {"Authorization": f"Bearer {idp.token()}"}
    counts = {"requests": 0, "4xx": 0, "2xx": 0}  # no 5xx count: the first one fails the test

    def send(method, url, **kw):
        resp = client.open(url, method=method, headers=headers, **kw)
        assert resp.status_code < 500, (method, url, resp.status_code, resp.get_data(as_text=True)[:300])
        counts["requests"] += 1
        counts["4xx" if resp.status_code >= 400 else "2xx"] += 1
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
    assert counts["requests"] >= 100
    record("attack", "issue 16 inputs (NUL, surrogates, 1,000-deep JSON), PostgreSQL", **counts)
