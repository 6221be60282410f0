"""The finalize callback: a stored summary in the front end's v2 shape, and the one POST that delivers it.

The front end's finalize route (`/api/assessments/convex/finalize`) accepts
`{sessionId, groupId, rubricVersion: "v2", summary: {skillAssessments: [...], meta}}` and rejects a
payload whose `rubricVersion` is not `"v2"`, whose `skillAssessments` is empty, or any item whose
`skillHash` is empty, whose `level` is outside 0..10 or whose criteria or `feedback` are not lists of
strings. It finds the user's skill by recomputing `sha256(skill.id + SKILL_HASH_SALT)` over its own
catalogue, so `skillHash` here is exactly that (lowercase hex), and a user's level only moves when both
sides share the salt.

An item without a level (not enough speech to assess that skill) is left out: the route would read a
missing level as 0 and pull the user's average down. A summary with no assessed skill is not sent at all
(the route refuses an empty list); `finalize_payload` says so by returning None.
"""

from __future__ import annotations

import hashlib
from typing import Any

import requests

from .errors import UpstreamRateLimited, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable

__all__ = ["post_summary", "finalize_payload", "skill_hash", "PAYLOAD_VERSION", "LEVEL_RANGE"]

PAYLOAD_VERSION = "v2"  # the finalize route's payload version (it refuses any other)
LEVEL_RANGE = (0, 10)  # the front end stores skill levels on this scale
# what the callback tells the front end about the run: numbers and labels, never user text
_META_KEYS = ("provider", "model", "skillsCount", "tokensIn", "tokensOut", "costUsd", "latencyMsTotal", "messageCount")


def skill_hash(skill_id: str, salt: str) -> str:
    """The front end's skill hash: lowercase hex sha256 of the skill id followed by the salt."""
    return hashlib.sha256((skill_id + salt).encode("utf-8")).hexdigest()


def finalize_payload(session_id: str, group_id: str, summary: dict, salt: str) -> tuple[dict | None, int]:
    """(the v2 payload or None when no skill was assessed, how many items were left out)."""
    items, skipped = [], 0
    for item in summary.get("skillAssessments") or []:
        skill = item.get("skill") if isinstance(item.get("skill"), dict) else {}
        skill_id = skill.get("id") or item.get("skillId")
        level = item.get("level")
        lo, hi = LEVEL_RANGE
        if not isinstance(skill_id, str) or not skill_id or type(level) is not int or not lo <= level <= hi:
            skipped += 1
            continue
        items.append(
            {
                "skillHash": skill_hash(skill_id, salt),
                "level": level,
                "metCriteria": _strings(item.get("metCriteria")),
                "unmetCriteria": _strings(item.get("unmetCriteria")),
                "feedback": _strings(item.get("feedback")),
            }
        )
    if not items:
        return None, skipped
    meta = summary.get("meta") or {}
    out_meta: dict[str, Any] = {k: meta[k] for k in _META_KEYS if k in meta}
    if summary.get("rubricVersion"):
        out_meta["rubricVersion"] = summary["rubricVersion"]
    payload = {
        "sessionId": session_id,
        "groupId": group_id,
        "rubricVersion": PAYLOAD_VERSION,
        "summary": {"skillAssessments": items, "meta": out_meta},
    }
    return payload, skipped


def _strings(value: Any) -> list[str]:
    """A list of non-empty strings: a list passes through (non-strings dropped), one string becomes a list."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v.strip()]
    return []


def post_summary(
    url: str,
    secret: str,
    payload: dict,
    *,
    request_id: str,
    traceparent: str | None = None,
    timeout_s: float = 5.0,
    session: requests.Session | None = None,
) -> int:
    """POST `payload` as JSON with bearer auth and `x-request-id`; the status code, or a typed error.

    Timeouts, refused connections, 429 and 5xx are retryable; any other 4xx is a refusal (permanent).
    """
    headers = {"content-type": "application/json", "x-request-id": request_id}
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    if traceparent:
        headers["traceparent"] = traceparent
    try:
        resp = (session or requests).post(url, json=payload, headers=headers, timeout=timeout_s, allow_redirects=False)
    except requests.Timeout as exc:
        raise UpstreamTimeout("finalize callback timed out") from exc
    except requests.ConnectionError as exc:
        raise UpstreamUnavailable("finalize callback unreachable") from exc
    if resp.status_code == 429:
        raise UpstreamRateLimited("finalize callback answered 429")
    if resp.status_code >= 500:
        raise UpstreamUnavailable(f"finalize callback answered {resp.status_code}")
    if resp.status_code >= 300:
        raise UpstreamRejected(f"finalize callback answered {resp.status_code}", type="persist_rejected")
    return resp.status_code
