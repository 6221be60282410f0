"""The one place the chat and summary routes ask whether the caller may use a session.

Ownership (every session records its owner, the verified token's subject) lands with the ownership issue.
Until then every caller may use every session, as on the other routes. When it lands, the owner check goes
into `require_session_access` and nowhere else: `GET /chat/stream`, `POST /api/v1/session-summary/generate`
and `GET /api/v1/session-summary` all call it before they read or write anything of the session.
"""

from __future__ import annotations

__all__ = ["require_session_access"]


def require_session_access(session_id: str | None) -> None:
    """Raise `web.errors.ApiError` (403/404) when the caller may not use `session_id`; None means no session."""
    return None
