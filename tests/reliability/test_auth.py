"""Auth: bearer JWTs verified against a local JWKS; every forgery answers 401 `unauthenticated`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time

import pytest

from coachup.settings import SettingsError, load_settings
from tests.conftest import TEST_HASH_SECRET
from tests.support.jwks import JwksServer

from .record import record

PROTECTED = [
    ("get", "/api/v1/jobs/00000000-0000-4000-8000-000000000000"),
    ("get", "/assessments/s1"),
    ("post", "/messages/ingest"),
    ("post", "/assessments/run"),
    ("get", "/api/v1/transcripts"),
    ("post", "/api/v1/tts"),
    ("get", "/api/v1/storage/audio/presign"),
    ("get", "/no/such/route"),
]
PUBLIC = ["/health", "/api/health", "/metrics", "/api/metrics", "/openapi.json", "/api/v1/skills"]


@pytest.fixture(scope="module")
def idp():
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture
def app(idp, tmp_path):
    settings = load_settings(
        {
            "COACHUP_DATA_DIR": str(tmp_path),
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "COACHUP_ENV": "test",
            "AUTH_LEEWAY_S": "5",
            # the short global bound as long as the per-kid one: the flood test below counts fetches exactly
            "AUTH_JWKS_MIN_INTERVAL_S": "60",
            **idp.env(),
        }
    )
    from web import create_app

    return create_app(settings, configure_logs=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict, claims: dict, key: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    sig = _b64(hmac.new(key, head.encode(), hashlib.sha256).digest()) if key else ""
    return head + "." + sig


def _get(client, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.get("/api/v1/jobs/00000000-0000-4000-8000-000000000000", headers=headers)


def _assert_401(resp):
    assert resp.status_code == 401, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["type"] == "unauthenticated"


def test_valid_token_passes_and_missing_token_is_401_on_every_protected_route(app, idp):
    client = app.test_client()
    assert _get(client, idp.token()).status_code == 404  # authenticated: the job simply does not exist
    for method, path in PROTECTED:
        _assert_401(getattr(client, method)(path, json={}))
    for path in PUBLIC:
        assert client.get(path).status_code in (200, 503), path
    skills = client.get("/api/v1/skills", headers={"Authorization": f"Bearer {idp.token()}"})
    assert skills.status_code == 200


def test_every_forged_or_stale_token_is_401(app, idp):
    client = app.test_client()
    now = int(time.time())
    public_pem = idp.private_key.public_key().public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["x"]).Encoding.PEM,
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["x"]).PublicFormat.SubjectPublicKeyInfo,
    )
    good = idp.token()
    head, payload, sig = good.split(".")
    tampered_claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered_claims["sub"] = "someone-else"
    cases = {
        "expired beyond leeway": idp.token(exp=now - 60, iat=now - 400, nbf=now - 400),
        "not yet valid": idp.token(nbf=now + 120),
        "wrong issuer": idp.token(iss="https://evil.test/"),
        "wrong audience": idp.token(aud="another-api"),
        "alg none": _unsigned({"alg": "none", "typ": "JWT", "kid": idp.kid}, idp.claims()),
        "HS256 with the public key": _unsigned(
            {"alg": "HS256", "typ": "JWT", "kid": idp.kid}, idp.claims(), key=public_pem
        ),
        "unknown kid": idp.token(kid="nobody"),
        "tampered payload": head + "." + _b64(json.dumps(tampered_claims).encode()) + "." + sig,
        "garbage": "not.a.jwt",
        "no exp": idp.token(exp=None),
    }
    answers = {}
    for name, token in cases.items():
        resp = _get(client, token)
        answers[name] = resp.status_code
        assert resp.status_code == 401, name
        assert resp.get_json()["error"]["type"] == "unauthenticated", name
    _assert_401(client.get("/assessments/s1", headers={"Authorization": "Basic dXNlcjpwYXNz"}))
    # within the leeway an expired token still passes (clock skew)
    assert _get(client, idp.token(exp=now - 2)).status_code == 404
    statuses = sorted(set(answers.values()))
    record(
        "auth",
        "forged/stale tokens",
        attempts=len(answers),
        rejected=sum(1 for s in answers.values() if s == 401),
        statuses="/".join(map(str, statuses)),
    )


def test_a_flood_of_unknown_kids_costs_a_bounded_number_of_jwks_fetches(app, idp):
    client = app.test_client()
    before = idp.fetches
    rejected = 0
    for i in range(200):
        resp = _get(client, idp.token(kid=f"forged-{i}"))
        _assert_401(resp)
        rejected += resp.status_code == 401
    fetches = idp.fetches - before
    assert fetches <= 1, fetches  # one refresh per AUTH_JWKS_REFRESH_S (60 s) at most
    assert _get(client, idp.token()).status_code == 404  # the real key still works
    record("auth", "unknown-kid flood", attempts=200, rejected=rejected, jwksFetches=fetches)


def test_a_flood_of_forged_kids_cannot_delay_a_key_rotation(tmp_path):
    # Given the default bounds (a short global interval, a long per-kid one) and a working key
    import json as _json

    import jwt as _jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.support.wait import wait_until
    from web import create_app

    idp = JwksServer()
    try:
        env = {"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_HASH_SECRET": TEST_HASH_SECRET, "COACHUP_ENV": "test"}
        client = create_app(load_settings({**env, **idp.env()}), configure_logs=False).test_client()
        assert _get(client, idp.token()).status_code == 404
        # When 50 forged kids arrive ...
        started = time.monotonic()
        for i in range(50):
            _assert_401(_get(client, idp.token(kid=f"forged-{i}")))
        flood_s = time.monotonic() - started
        flood_fetches = idp.fetches - 1
        # ... and then the identity provider rotates to a new key
        idp.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = _json.loads(_jwt.algorithms.RSAAlgorithm.to_jwk(idp.private_key.public_key()))
        idp.kid = "k2"
        idp.public_jwk = {**jwk, "kid": "k2", "use": "sig", "alg": "RS256"}
        rotated = time.monotonic()
        wait_until(lambda: _get(client, idp.token()).status_code == 404, timeout=1.0, interval=0.05, what="new key")
        accepted_s = time.monotonic() - rotated
    finally:
        idp.close()
    # Then the new key is accepted within a second, and the flood cost a bounded number of fetches
    assert accepted_s < 1.0, accepted_s
    assert flood_fetches <= 1 + flood_s / 0.5, (flood_fetches, flood_s)
    record(
        "auth", "forged-kid flood then rotation", attempts=50, jwksFetches=flood_fetches, acceptedS=round(accepted_s, 3)
    )


def test_production_refuses_to_start_without_issuer_and_audience(tmp_path):
    base = {
        "COACHUP_DATA_DIR": str(tmp_path),
        "COACHUP_ENV": "production",
        "COACHUP_HASH_SECRET": "a-private-production-secret",
        "AUTH_JWKS_URL": "https://idp.example/.well-known/jwks.json",
    }
    for missing in ({"AUTH_AUDIENCE": "coachup-api"}, {"AUTH_ISSUER": "https://idp.example/"}):
        with pytest.raises(SettingsError, match="AUTH_ISSUER and AUTH_AUDIENCE"):
            load_settings({**base, **missing})
    load_settings({**base, "AUTH_ISSUER": "https://idp.example/", "AUTH_AUDIENCE": "coachup-api"})


def test_no_token_or_claim_reaches_the_logs(app, idp, caplog):
    client = app.test_client()
    token = idp.token(sub="leaky-subject-123")
    with caplog.at_level(logging.DEBUG):
        _get(client, token)
        _get(client, token[:-4] + "AAAA")
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert token not in text and token.split(".")[2] not in text and "leaky-subject-123" not in text


def test_development_mode_is_logged_and_production_without_auth_refuses_to_start(tmp_path, caplog):
    from web import create_app

    with caplog.at_level(logging.WARNING, logger="coachup.api"):
        app = create_app(load_settings({"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_ENV": "dev"}), configure_logs=False)
    assert any(getattr(r, "event", "") == "auth_disabled" for r in caplog.records)
    assert app.test_client().get("/api/v1/transcripts?sessionId=s1").status_code != 401
    with pytest.raises(SettingsError, match="AUTH_JWKS_URL"):
        load_settings(
            {
                "COACHUP_DATA_DIR": str(tmp_path),
                "COACHUP_ENV": "production",
                "COACHUP_HASH_SECRET": "a-private-production-secret",
            }
        )


def test_the_document_and_the_hook_agree_on_which_routes_are_public(app):
    from web.jwt_auth import PUBLIC_ENDPOINTS
    from web.openapi import SPEC
    from web.openapi_security import PUBLIC_PATHS

    by_path = {rule.rule.replace("<", "{").replace(">", "}"): rule.endpoint for rule in app.url_map.iter_rules()}
    assert {by_path[p] for p in PUBLIC_PATHS} == set(PUBLIC_ENDPOINTS)
    for path, operations in SPEC["paths"].items():
        for op in operations.values():
            assert (op["security"] == []) == (path in PUBLIC_PATHS), path
            assert path in PUBLIC_PATHS or "401" in op["responses"], path


def test_an_id_with_a_trailing_newline_is_refused(app, idp):
    resp = app.test_client().post(
        "/messages/ingest",
        headers={"Authorization": f"Bearer {idp.token()}"},
        json={"sessionId": "s1\n", "messageId": "m1", "role": "user", "content": "hi"},
    )
    assert resp.status_code == 400


def test_ops_routes_need_a_valid_jwt_and_the_admin_token_on_top(idp, tmp_path):
    # Given auth on and an admin token configured
    settings = load_settings(
        {
            "COACHUP_DATA_DIR": str(tmp_path),
            "COACHUP_HASH_SECRET": TEST_HASH_SECRET,
            "COACHUP_ENV": "test",
            "COACHUP_ADMIN_TOKEN": "admin-tok-31",
            **idp.env(),
        }
    )
    from tests.support.services import EmbeddedBrokerServer
    from web import create_app

    broker = EmbeddedBrokerServer(settings)  # the embedded broker's server, as `make run` starts it
    client = create_app(settings, configure_logs=False).test_client()
    user = {"authorization": f"Bearer {idp.token()}"}
    # Then the admin token alone (as a bearer, where the JWT goes) is no user credential: 401
    alone = client.get("/api/v1/ops/queues", headers={"authorization": "Bearer admin-tok-31"})
    assert alone.status_code == 401 and alone.get_json()["error"]["type"] == "unauthenticated"
    # A valid user without the admin token is not an operator: 401; with a wrong one: 403
    assert client.get("/api/v1/ops/queues", headers=user).status_code == 401
    assert client.get("/api/v1/ops/queues", headers={**user, "x-admin-token": "nope"}).status_code == 403
    # Both together: the ops API answers
    ok = client.get("/api/v1/ops/queues", headers={**user, "x-admin-token": "admin-tok-31"})
    broker.close()
    assert ok.status_code == 200, ok.get_json()


def _app_with(idp, tmp_path, **env):
    from web import create_app

    base = {"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_HASH_SECRET": TEST_HASH_SECRET, "COACHUP_ENV": "test"}
    return create_app(load_settings({**base, **idp.env(), **env}), configure_logs=False)


def test_authorized_parties_admit_only_tokens_whose_azp_is_listed(idp, tmp_path):
    # Given AUTH_AUTHORIZED_PARTIES names two client applications
    client = _app_with(idp, tmp_path, AUTH_AUTHORIZED_PARTIES="web-app,ios-app").test_client()
    # Then a token from either passes, one from another client or with no azp is 401
    assert _get(client, idp.token(azp="web-app")).status_code == 404
    assert _get(client, idp.token(azp="ios-app")).status_code == 404
    _assert_401(_get(client, idp.token(azp="evil-app")))
    _assert_401(_get(client, idp.token()))


def test_without_authorized_parties_azp_is_not_checked(idp, tmp_path):
    client = _app_with(idp, tmp_path).test_client()
    assert _get(client, idp.token(azp="any-app")).status_code == 404


def test_an_unreachable_jwks_answers_401_and_logs_the_failed_fetch(idp, tmp_path, caplog):
    import socket

    # Given a JWKS URL whose port is held by this test but not listening (connection refused)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}/jwks.json"
        client = _app_with(idp, tmp_path, AUTH_JWKS_URL=url, AUTH_JWKS_TIMEOUT_S="2").test_client()
        caplog.set_level(logging.WARNING, logger="coachup")
        # When a well-formed token arrives, Then it is 401 (never a 500) and the failed fetch is logged
        _assert_401(_get(client, idp.token()))
    assert any(getattr(r, "event", None) == "auth_jwks_fetch_failed" for r in caplog.records), caplog.records
