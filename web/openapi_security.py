"""The document's security: a bearer-JWT scheme on every non-public operation, which may answer 401.

`PUBLIC_PATHS` is the document's view of `web.jwt_auth.PUBLIC_ENDPOINTS` (a test keeps them equal). Every
operation may also answer 431 (headers over `MAX_HEADER_BYTES`), which the request hook enforces everywhere.
"""

from __future__ import annotations

__all__ = ["PUBLIC_PATHS", "secure"]

PUBLIC_PATHS = frozenset(
    {"/health", "/api/health", "/metrics", "/api/metrics", "/service-metrics", "/openapi.json", "/api/v1/skills"}
)
_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def secure(spec: dict) -> dict:
    """Add the `bearerAuth` scheme, `security` and a 401 answer to each protected operation of `spec`."""
    spec.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "Required when AUTH_JWKS_URL is set (always in production). The token's iss + sub own "
        "every session, job and audio object the request creates; someone else's answers 404.",
    }
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            operation["responses"].setdefault("431", _ERROR)
            if path in PUBLIC_PATHS:
                operation["security"] = []
                continue
            operation["security"] = [{"bearerAuth": []}]
            operation["responses"].setdefault("401", _ERROR)
    return spec
