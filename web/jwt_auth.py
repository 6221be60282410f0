"""Bearer-JWT authentication: tokens verified against the identity provider's JWKS with PyJWT.

`install_auth(app, settings)` makes every route except `PUBLIC_ENDPOINTS` answer 401
`{"error":{"type":"unauthenticated"}}` without a valid `Authorization: Bearer <JWT>`, and registers the
verifier under `app.extensions["coachup.auth"]` for `web.auth.credential_required`. With no
`AUTH_JWKS_URL` the API runs in development mode (logged once at start-up as `auth_disabled`);
`Settings` refuses that combination when `COACHUP_ENV=production`.

Only asymmetric algorithms are accepted (so `alg: none` and HS256 signed with a public key fail), the key
comes from the JWKS by `kid`. An unknown `kid` refetches the JWKS at most once per `AUTH_JWKS_REFRESH_S` for
that kid, and no two fetches come closer than `AUTH_JWKS_MIN_INTERVAL_S` (0.5 s): a flood of forged kids
costs at most two fetches a second, and since every fetch loads the whole key set, a genuinely rotated key
is known after the next one (within about the short interval), whatever the flood.

A verified token must carry `sub`: with `iss` it names the request's owner (`web.principal`), and a token
that names nobody is refused (401).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import jwt
import requests
from flask import Flask, g, request

from coachup.logs import log_event
from coachup.settings import Settings

from .auth import AUTH_EXTENSION
from .errors import error_response

__all__ = ["JwksCache", "JwtVerifier", "install_auth", "PUBLIC_ENDPOINTS", "ALGORITHMS"]

log = logging.getLogger("coachup.api")

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
# open without a credential: liveness/readiness for probes, the scrape endpoints (and the old API's four
# service numbers), the API document and the skill catalogue (public reference data)
PUBLIC_ENDPOINTS = frozenset(
    {
        "health.liveness",
        "health.readiness",
        "metrics.prometheus_metrics",
        "metrics.json_metrics",
        "service_metrics.service_metrics",
        "openapi.openapi_document",
        "catalogue.skills",
    }
)
MAX_TOKEN_CHARS = 8192


class JwksCache:
    """Signing keys by `kid`, fetched from `url`.

    An unknown kid refetches at most once per `min_refresh_s` for that kid, and any two fetches are at least
    `min_interval_s` apart; a kid refused only by the short interval is not marked, so it asks again soon.
    """

    MAX_TRACKED_KIDS = 4096  # the per-kid memory is forgotten wholesale beyond this (a flood cannot grow it)

    def __init__(self, url: str, *, min_refresh_s: float, timeout_s: float, min_interval_s: float) -> None:
        # no defaults: the bounds are settings (AUTH_JWKS_*), whose defaults are documented in one place
        self.url, self.min_refresh_s, self.timeout_s = url, min_refresh_s, timeout_s
        self.min_interval_s = min_interval_s
        self.fetches = 0
        self._keys: dict[str, jwt.PyJWK] = {}
        self._last_fetch = float("-inf")
        self._tried: dict[str, float] = {}  # unknown kid -> when it last caused a fetch
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        self.fetches += 1
        self._last_fetch = time.monotonic()
        resp = requests.get(self.url, timeout=self.timeout_s)
        resp.raise_for_status()
        keys = {}
        for data in resp.json().get("keys", []):
            try:
                key = jwt.PyJWK(data)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue  # a key we cannot use (unsupported type, symmetric): skip it, keep the others
            if data.get("kid"):
                keys[data["kid"]] = key
        self._keys = keys

    def key(self, kid: str) -> jwt.PyJWK | None:
        """The key for `kid`, or None when it is unknown even after an allowed refresh."""
        found = self._keys.get(kid)
        if found is not None:
            return found
        with self._lock:
            if kid in self._keys:
                return self._keys[kid]
            now = time.monotonic()
            if now - self._tried.get(kid, float("-inf")) < self.min_refresh_s:
                return None  # this kid caused a fetch a moment ago and was not in it
            if now - self._last_fetch < self.min_interval_s:
                return None  # someone else's fetch just ran; this kid may ask again after the short interval
            if len(self._tried) >= self.MAX_TRACKED_KIDS:
                self._tried.clear()
            self._tried[kid] = now
            try:
                self._fetch()
            except (requests.RequestException, ValueError):
                log_event(log, "auth_jwks_fetch_failed", logging.WARNING)
            return self._keys.get(kid)


class JwtVerifier:
    """`verify(token) -> claims` or raises `jwt.InvalidTokenError`; `__call__(request) -> bool` for the hook."""

    def __init__(self, settings: Settings, jwks: JwksCache | None = None) -> None:
        self.settings = settings
        self.jwks = jwks or JwksCache(
            settings.auth_jwks_url,
            min_refresh_s=settings.auth_jwks_refresh_s,
            timeout_s=settings.auth_jwks_timeout_s,
            min_interval_s=settings.auth_jwks_min_interval_s,
        )

    def verify(self, token: str) -> dict:
        if len(token) > MAX_TOKEN_CHARS:
            raise jwt.InvalidTokenError("token too long")
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in ALGORITHMS:
            raise jwt.InvalidAlgorithmError("algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise jwt.InvalidTokenError("no kid")
        key = self.jwks.key(kid)
        if key is None:
            raise jwt.InvalidTokenError("unknown kid")
        s = self.settings
        options: Any = {
            "require": ["exp", "sub"],
            "verify_aud": bool(s.auth_audience),
            "verify_iss": bool(s.auth_issuer),
        }
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[header["alg"]],
            audience=list(s.auth_audience) or None,
            issuer=s.auth_issuer or None,
            leeway=s.auth_leeway_s,
            options=options,
        )
        if s.auth_authorized_parties and claims.get("azp") not in s.auth_authorized_parties:
            raise jwt.InvalidTokenError("azp not authorized")
        if not isinstance(claims.get("sub"), str) or not claims["sub"].strip():
            raise jwt.MissingRequiredClaimError("sub")  # no subject, no owner: nobody to act for
        return claims

    def __call__(self, req) -> bool:
        auth = req.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        try:
            g.auth_claims = self.verify(token.strip())  # read by web.principal; never logged
        except (jwt.PyJWTError, ValueError, TypeError, json.JSONDecodeError) as exc:
            g.setdefault("log_fields", {})["authError"] = type(
                exc
            ).__name__  # the class only: never the token or its claims
            return False
        return True


def install_auth(app: Flask, settings: Settings) -> None:
    """Require a bearer JWT on every non-public route, or log development mode when no JWKS is set."""
    if not settings.auth_jwks_url:
        log_event(
            log,
            "auth_disabled",
            logging.WARNING,
            reason="AUTH_JWKS_URL unset: development mode, every route is open and every session, job and "
            "audio object belongs to the one dev subject",
            coachupEnv=settings.env,
        )
        return
    verifier = JwtVerifier(settings)
    app.extensions[AUTH_EXTENSION] = verifier
    log_event(log, "auth_enabled", issuer=settings.auth_issuer or None)

    @app.before_request
    def _require_credential():
        if request.endpoint in PUBLIC_ENDPOINTS or request.method == "OPTIONS":
            return None
        if not verifier(request):
            return error_response(401, "unauthenticated", "missing or invalid bearer token")
        return None
