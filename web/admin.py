"""The admin credential of the ops routes: `COACHUP_ADMIN_TOKEN` in `x-admin-token` (or, without a JWKS,
`Authorization: Bearer <token>`). Never open by default: with no token configured every ops route answers
403 `admin_unconfigured`."""

from __future__ import annotations

import hmac

from flask import request

from .errors import ApiError
from .runtime import runtime

__all__ = ["require_admin"]


def require_admin() -> None:
    """Raise the 401/403 `ApiError` unless the request carries the admin token (a `before_request` hook)."""
    settings = runtime().settings
    token = settings.admin_token
    if not token:
        raise ApiError(403, "admin_unconfigured", "the ops API is off: set COACHUP_ADMIN_TOKEN")
    # `x-admin-token` rides beside the user's JWT (Authorization) when auth is on; without a JWKS (dev mode)
    # `Authorization: Bearer <admin token>` is accepted too
    given = request.headers.get("x-admin-token", "")
    scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
    if not given and not settings.auth_jwks_url and scheme.lower() == "bearer":
        given = bearer
    if not given:
        raise ApiError(401, "unauthenticated", "send the admin token in x-admin-token")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(403, "forbidden", "wrong admin token")
