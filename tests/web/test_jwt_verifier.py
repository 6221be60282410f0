"""The JWT verifier and its key cache one promise at a time (web/jwt_auth.py), against a local JWKS server.

tests/reliability/test_auth.py drives forged tokens through the API; these pin the edges it does not reach:
the token length limit to the character, what is checked only when configured (audience, issuer, `azp`),
the subject rule, the `Authorization` header forms, and the JWKS cache's bounds (per kid, between fetches,
on its memory, on a JWKS server that never answers).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import time

import jwt
import pytest
from flask import Flask, g

from coachup.settings import load_settings
from tests.conftest import TEST_HASH_SECRET
from tests.support.jwks import JwksServer
from web.auth import AUTH_EXTENSION
from web.jwt_auth import MAX_TOKEN_CHARS, JwksCache, JwtVerifier, install_auth


@pytest.fixture(scope="module")
def idp():
    server = JwksServer()
    yield server
    server.close()


def _settings(tmp_path, idp, **env):
    base = {"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_HASH_SECRET": TEST_HASH_SECRET, "COACHUP_ENV": "test"}
    return load_settings({**base, **idp.env(), **env})


def _verifier(tmp_path, idp, **env) -> JwtVerifier:
    return JwtVerifier(_settings(tmp_path, idp, **env))


def _token_of_length(idp: JwksServer, length: int) -> str:
    """A validly signed token exactly `length` characters long (padding in a claim and a header field)."""
    base = len(idp.token(pad="", headers={"x": ""}))
    for claim_pad in range(max(0, (length - base) * 3 // 4 - 8), length):
        for head_pad in range(4):
            token = idp.token(pad="p" * claim_pad, headers={"x": "h" * head_pad})
            if len(token) == length:
                return token
    raise AssertionError(f"no token of {length} characters")


def test_a_token_of_exactly_the_limit_verifies_and_one_character_more_is_refused(tmp_path, idp):
    verifier = _verifier(tmp_path, idp)
    at_limit, over = _token_of_length(idp, MAX_TOKEN_CHARS), _token_of_length(idp, MAX_TOKEN_CHARS + 1)
    assert verifier.verify(at_limit)["sub"] == "user-under-test"
    with pytest.raises(jwt.InvalidTokenError, match="too long"):
        verifier.verify(over)


def test_audience_and_issuer_are_checked_only_when_configured(tmp_path, idp):
    # Given no AUTH_AUDIENCE and no AUTH_ISSUER (a development identity provider)
    verifier = _verifier(tmp_path, idp, AUTH_AUDIENCE="", AUTH_ISSUER="")
    # Then a token naming any audience and any issuer passes
    assert verifier.verify(idp.token(aud="some-other-api", iss="https://elsewhere.test/"))["sub"]
    # And with them set, each is enforced, and any one of several audiences is accepted
    strict = _verifier(tmp_path, idp, AUTH_AUDIENCE="first-api,coachup-api")
    assert strict.verify(idp.token(aud="coachup-api"))["sub"]
    with pytest.raises(jwt.InvalidAudienceError):
        strict.verify(idp.token(aud="some-other-api"))
    with pytest.raises(jwt.InvalidIssuerError):
        strict.verify(idp.token(iss="https://elsewhere.test/"))


def test_a_token_must_name_a_subject(tmp_path, idp):
    verifier = _verifier(tmp_path, idp)
    for sub in (None, "", "   "):
        with pytest.raises(jwt.InvalidTokenError):
            verifier.verify(idp.token(sub=sub))


def test_a_token_must_carry_an_expiry_and_an_expired_one_fails_past_the_leeway(tmp_path, idp):
    verifier = _verifier(tmp_path, idp, AUTH_LEEWAY_S="5")
    now = int(time.time())
    with pytest.raises(jwt.MissingRequiredClaimError):
        verifier.verify(idp.token(exp=None))
    assert verifier.verify(idp.token(exp=now - 2))["sub"]  # inside the leeway
    with pytest.raises(jwt.ExpiredSignatureError):
        verifier.verify(idp.token(exp=now - 30))


def test_the_algorithm_is_the_headers_and_must_be_asymmetric(tmp_path, idp):
    verifier = _verifier(tmp_path, idp)
    token = idp.token()
    head, payload, sig = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    # the same signature under a header that claims RS512: refused (the key verifies only what the header says)
    relabelled = base64.urlsafe_b64encode(json.dumps({**header, "alg": "RS512"}).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidTokenError):
        verifier.verify(f"{relabelled}.{payload}.{sig}")
    no_kid = {k: v for k, v in header.items() if k != "kid"}
    for forged_header in (no_kid, {**header, "kid": ""}):
        forged = base64.urlsafe_b64encode(json.dumps(forged_header).encode()).rstrip(b"=").decode()
        with pytest.raises(jwt.InvalidTokenError, match="no kid"):
            verifier.verify(f"{forged}.{payload}.{sig}")


def test_authorized_parties_are_enforced_only_when_listed(tmp_path, idp):
    listed = _verifier(tmp_path, idp, AUTH_AUTHORIZED_PARTIES="web-app")
    assert listed.verify(idp.token(azp="web-app"))["sub"]
    with pytest.raises(jwt.InvalidTokenError, match="azp"):
        listed.verify(idp.token(azp="other-app"))
    assert _verifier(tmp_path, idp).verify(idp.token())["sub"]  # no azp at all, none required


def _call(verifier: JwtVerifier, authorization: str | None) -> tuple[bool, dict]:
    app = Flask("t")
    headers = {} if authorization is None else {"Authorization": authorization}
    with app.test_request_context("/", headers=headers):
        ok = verifier(__import__("flask").request)
        return ok, {"claims": g.get("auth_claims"), "fields": g.get("log_fields", {})}


def test_the_hook_takes_a_bearer_token_in_any_case_and_nothing_else(tmp_path, idp):
    verifier = _verifier(tmp_path, idp)
    token = idp.token()
    for header in (f"Bearer {token}", f"bearer {token}", f"BEARER {token}", f"Bearer {token}  "):
        ok, seen = _call(verifier, header)
        assert ok and seen["claims"]["sub"] == "user-under-test", header
    for header in (None, "", "Bearer", "Bearer    ", f"Token {token}", f"Basic {token}", token):
        ok, seen = _call(verifier, header)
        assert not ok and seen["claims"] is None, header


def test_a_refused_token_leaves_only_the_error_class_for_the_access_log(tmp_path, idp):
    ok, seen = _call(_verifier(tmp_path, idp), f"Bearer {idp.token(exp=int(time.time()) - 600)}")
    assert not ok and seen["fields"] == {"authError": "ExpiredSignatureError"}
    ok, seen = _call(_verifier(tmp_path, idp), "Bearer not.a.jwt")
    assert not ok and seen["fields"] == {"authError": "DecodeError"}


def test_install_auth_guards_every_route_but_the_public_ones_and_preflight(tmp_path, idp, caplog):
    app = Flask("t")

    @app.route("/private", methods=["GET", "OPTIONS"])
    def private():
        return "ok"

    with caplog.at_level(logging.INFO, logger="coachup.api"):
        install_auth(app, _settings(tmp_path, idp))
    assert isinstance(app.extensions[AUTH_EXTENSION], JwtVerifier)
    enabled = [r for r in caplog.records if getattr(r, "event", None) == "auth_enabled"]
    assert [r.issuer for r in enabled] == [idp.issuer]
    client = app.test_client()
    refused = client.get("/private")
    assert refused.status_code == 401 and refused.get_json()["error"]["type"] == "unauthenticated"
    assert client.options("/private").status_code == 200  # a CORS preflight carries no credential
    assert client.get("/private", headers={"Authorization": f"Bearer {idp.token()}"}).status_code == 200


def test_install_auth_without_a_jwks_url_is_development_mode_and_says_so(tmp_path, caplog):
    app = Flask("t")

    @app.route("/private")
    def private():
        return "ok"

    settings = load_settings({"COACHUP_DATA_DIR": str(tmp_path), "COACHUP_ENV": "dev"})
    with caplog.at_level(logging.WARNING, logger="coachup.api"):
        install_auth(app, settings)
    [disabled] = [r for r in caplog.records if getattr(r, "event", None) == "auth_disabled"]
    assert disabled.levelno == logging.WARNING and disabled.coachupEnv == "dev" and "AUTH_JWKS_URL" in disabled.reason
    assert AUTH_EXTENSION not in app.extensions
    assert app.test_client().get("/private").status_code == 200


# --- the key cache


def test_the_cache_keeps_usable_keys_and_skips_the_rest(idp):
    # Given a JWKS with a key of an unknown type, a broken key, a key with no kid and the real one
    real = idp.public_jwk
    unknown = {"kty": "XYZ", "kid": "odd"}
    broken = {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"}
    no_kid = {k: v for k, v in real.items() if k != "kid"}
    idp.served_keys = [unknown, broken, no_kid, real]
    try:
        cache = JwksCache(idp.url, min_refresh_s=0, min_interval_s=0, timeout_s=3)
        # Then the real key is found after the ones that cannot be used, which are not keys
        assert cache.key(real["kid"]) is not None
        assert cache.key("odd") is None and cache.key("broken") is None
    finally:
        idp.served_keys = None


def test_an_unknown_kid_refetches_once_per_refresh_interval(idp):
    cache = JwksCache(idp.url, min_refresh_s=3600, min_interval_s=0, timeout_s=3)
    before = idp.fetches
    assert cache.key(idp.kid) is not None  # the first lookup fetches
    assert cache.key("nobody") is None and cache.key("nobody") is None
    assert idp.fetches - before == 2  # the known kid's fetch, then one for "nobody", not two
    assert cache.key("someone") is None
    assert idp.fetches - before == 3  # another unknown kid may fetch (the short interval is 0 here)
    assert cache.fetches == idp.fetches - before


def test_no_two_fetches_come_closer_than_the_short_interval(idp):
    cache = JwksCache(idp.url, min_refresh_s=0, min_interval_s=3600, timeout_s=3)
    before = idp.fetches
    for i in range(20):
        assert cache.key(f"forged-{i}") is None
    assert idp.fetches - before == 1


def test_with_no_interval_every_unknown_kid_asks_again(idp):
    cache = JwksCache(idp.url, min_refresh_s=0, min_interval_s=0, timeout_s=3)
    before = idp.fetches
    for _ in range(3):
        assert cache.key("nobody") is None
    assert idp.fetches - before == 3


def test_the_memory_of_unknown_kids_is_bounded(idp):
    cache = JwksCache(idp.url, min_refresh_s=3600, min_interval_s=0, timeout_s=3)
    cache.MAX_TRACKED_KIDS = 10
    for i in range(35):
        cache.key(f"forged-{i}")
        assert len(cache._tried) <= 10, i
    # and the kid that just caused a fetch is remembered (it cannot fetch again at once)
    before = idp.fetches
    cache.key("forged-34")
    assert idp.fetches == before


def test_a_jwks_server_that_never_answers_costs_the_timeout_not_the_request(caplog):
    # Given a JWKS URL whose server accepts connections and never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/jwks.json"
        cache = JwksCache(url, min_refresh_s=60, min_interval_s=0.5, timeout_s=0.3)
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="coachup.api"):
            assert cache.key("k1") is None
        elapsed = time.monotonic() - started
    # Then the lookup gives up within the timeout (with room for a loaded machine) and says why
    assert elapsed < 10, elapsed
    assert [getattr(r, "event", None) for r in caplog.records] == ["auth_jwks_fetch_failed"]


def test_a_jwks_answer_that_is_an_error_or_not_json_is_a_failed_fetch(idp, caplog):
    for status, body in ((500, b'{"keys": []}'), (200, b"<html>not json</html>")):
        idp.raw_answer = (status, body)
        try:
            cache = JwksCache(idp.url, min_refresh_s=0, min_interval_s=0, timeout_s=3)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="coachup.api"):
                assert cache.key(idp.kid) is None
            assert [getattr(r, "event", None) for r in caplog.records] == ["auth_jwks_fetch_failed"], status
        finally:
            idp.raw_answer = None


def test_a_jwks_document_without_keys_knows_no_key(idp):
    cache = JwksCache(idp.url, min_refresh_s=0, min_interval_s=0, timeout_s=3)
    assert cache.key(idp.kid) is not None
    # When the identity provider then answers a document with no "keys" at all
    idp.raw_answer = (200, b"{}")
    try:
        # Then the old key is forgotten with the old document, and that is an answer, not an error
        assert cache.key("another") is None
        assert cache.key(idp.kid) is None
    finally:
        idp.raw_answer = None


def test_the_verifier_waits_for_the_jwks_no_longer_than_its_setting(tmp_path, idp):
    # Given AUTH_JWKS_URL pointing at a server that accepts and never answers, and a short AUTH_JWKS_TIMEOUT_S
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/jwks.json"
        verifier = _verifier(tmp_path, idp, AUTH_JWKS_URL=url, AUTH_JWKS_TIMEOUT_S="0.3")
        started = time.monotonic()
        # Then a token is refused as signed by an unknown key once the timeout passes, not after a hang
        with pytest.raises(jwt.InvalidTokenError, match="unknown kid"):
            verifier.verify(idp.token())
    assert time.monotonic() - started < 10
