"""Optional persistence callback: POST each stored summary to `PERSIST_ASSESSMENTS_URL`."""

from __future__ import annotations

import requests

from .errors import UpstreamRateLimited, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable

__all__ = ["post_summary", "PERSIST_TIMEOUT_S"]

PERSIST_TIMEOUT_S = 5.0


def post_summary(
    url: str,
    secret: str,
    payload: dict,
    *,
    request_id: str,
    traceparent: str | None = None,
    session: requests.Session | None = None,
) -> None:
    """POST `payload` as JSON with bearer auth and `x-request-id`; raise a typed error on failure."""
    headers = {"Authorization": f"Bearer {secret}", "x-request-id": request_id, "content-type": "application/json"}
    if traceparent:
        headers["traceparent"] = traceparent
    try:
        resp = (session or requests).post(
            url, json=payload, headers=headers, timeout=PERSIST_TIMEOUT_S, allow_redirects=False
        )
    except requests.Timeout as exc:
        raise UpstreamTimeout("persistence callback timed out") from exc
    except requests.ConnectionError as exc:
        raise UpstreamUnavailable("persistence callback unreachable") from exc
    if resp.status_code == 429:
        raise UpstreamRateLimited("persistence callback answered 429")
    if resp.status_code >= 500:
        raise UpstreamUnavailable(f"persistence callback answered {resp.status_code}")
    if resp.status_code >= 400:
        raise UpstreamRejected(f"persistence callback answered {resp.status_code}", type="persist_rejected")
