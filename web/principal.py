"""Who the current request acts for: `Principal(owner, admin)`, decided once per request.

With a JWKS (`web.jwt_auth`) the owner is `coachup.owners.owner_of(iss, sub)` of the verified token; a token
without `sub` never gets here (401). Without a JWKS (development) every request is the one dev subject.
The admin token (`COACHUP_ADMIN_TOKEN` in `x-admin-token`; without a JWKS also as the bearer) makes the
request an operator's: it reads and acts across owners (the ops API, legacy rows).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from flask import g, request

from coachup.owners import dev_owner, owner_of

from .errors import ApiError
from .runtime import runtime

__all__ = ["Principal", "current_principal", "ADMIN_OWNER"]

ADMIN_OWNER = "operator"  # what an operator's own new session is owned by (not a hash: no token matches it)


@dataclass(frozen=True)
class Principal:
    owner: str
    admin: bool = False


def _admin_token_given() -> bool:
    settings = runtime().settings
    if not settings.admin_token:
        return False
    given = request.headers.get("x-admin-token", "")
    if not given and not settings.auth_jwks_url:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        given = bearer if scheme.lower() == "bearer" else ""
    return bool(given) and hmac.compare_digest(given.strip().encode(), settings.admin_token.encode())


def current_principal() -> Principal:
    """The request's principal (cached on `g`); the verified claims come from `web.jwt_auth`."""
    found = g.get("principal")
    if found is not None:
        return found
    rt = runtime()
    claims = g.get("auth_claims")
    if claims is not None:
        owner = owner_of(rt.hasher, str(claims.get("iss") or ""), str(claims["sub"]))
    elif rt.settings.auth_jwks_url:  # auth on but no verified token (a path the hook skipped): nobody
        raise ApiError(401, "unauthenticated", "missing or invalid bearer token")
    else:  # development mode: one subject owns everything
        owner = dev_owner(rt.hasher)
    principal = Principal(ADMIN_OWNER, admin=True) if _admin_token_given() else Principal(owner)
    g.principal = principal
    return principal
