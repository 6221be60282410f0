"""Fuzzing: schemathesis drives the app in-process from its own `/openapi.json`, with and without a valid
bearer token: no 5xx, and every response matches the documented status codes, content types and schemas.

`FUZZ_EXAMPLES` examples per operation and auth mode (default 80: hypothesis stops early on small inputs; ≥ 1,000 requests in all).
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


@pytest.fixture(scope="module")
def idp():
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def fuzz_app(idp, tmp_path_factory):
    from coachup.settings import load_settings
    from web import create_app

    data = tmp_path_factory.mktemp("fuzz")
    settings = load_settings(
        {
            "COACHUP_DATA_DIR": str(data),
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
    yield create_app(settings, configure_logs=False)
    broker.close()


def _fuzz(app, headers: dict) -> dict:
    """Every operation of the app's own document, `EXAMPLES` generated cases each; counts by status class."""
    api = schemathesis.openapi.from_wsgi("/openapi.json", app)
    counts = {"requests": 0, "operations": 0, "2xx": 0, "4xx": 0, "5xx": 0, "501 unconfigured": 0}
    for result in api.get_all_operations():
        operation = result.ok()
        counts["operations"] += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
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
