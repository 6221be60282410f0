"""The Coach Up web front end, as far as the API can tell: what its Next.js proxies send and what its UI reads.

Read from `Antonio7098/coach-up-frontend` (ui/src/context/MicContext.tsx, ui/src/app/api/**/route.ts,
ui/src/app/skills/[id]/page.tsx), one method per call, doing what that code does and nothing more:

- `ingest` (MicContext.ingestMessage through /api/messages/ingest): body `{sessionId, messageId (base36),
  role, content, ts: Date.now()}`; the proxy forwards every browser header (cookies included) and sets
  `X-Request-Id` (the browser's, else a new UUID). The UI reads `state === "active"` for the badge,
  `groupId`, `turnCount`, and adds a queued chip for `groupId` when `enqueued` is true. Status is ignored.
- `poll` (MicContext.ensureAssessmentPolling through /api/assessments/[sessionId]): while a chip is pending,
  GET every 1200 ms with `Accept` and a new UUID `X-Request-Id`; the chip whose id equals
  `latestGroupId || latest_group_id` turns done and keeps that response's `summary`, never polled again.
- `skill_page` (skills/[id]/page.tsx): GET with `X-Tracked-Skill-Id`; 404 is the empty state; keeps the
  items of `skillAssessments` (top level, else `summary.skillAssessments`) whose `String(skill?.id).trim()`
  is the skill id.
- `run` (/api/assessments/run): the body `{sessionId}` as bytes, `?sessionId=` added from it, every browser
  header forwarded; reads `groupId` when the answer is ok.
- `tracked_skills` (/api/tracked-skills): GET `/chat/tracked-skills` + the query string, no headers; any JSON.
"""

from __future__ import annotations

import json
import random
import string
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import requests

POLL_INTERVAL_S = 1.2  # MicContext's setTimeout(r, 1200)


def base36_id() -> str:
    """`Math.random().toString(36).slice(2)`: 10-11 lowercase base36 characters."""
    return "".join(random.choices(string.digits + string.ascii_lowercase, k=random.randint(10, 11)))


def browser_headers(cookie_bytes: int = 6000) -> dict[str, str]:
    """What a Chromium tab sends to the Next.js route, which the proxy forwards as it is."""
    cookie, i = [], 0
    while sum(len(c) + 2 for c in cookie) < cookie_bytes:  # Clerk session JWTs and friends
        cookie.append(f"__clerk_db_jwt_{i}=" + "".join(random.choices(string.ascii_letters + string.digits, k=180)))
        i += 1
    return {
        "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        "accept-language": "en-GB,en;q=0.9",
        "accept-encoding": "gzip, deflate, br, zstd",
        "origin": "http://localhost:3000",
        "referer": "http://localhost:3000/chat",
        "sec-ch-ua": '"Chromium";v="131", "Not_A Brand";v="24"',
        "sec-ch-ua-mobile": "?0",
        "sec-ch-ua-platform": '"Linux"',
        "sec-fetch-dest": "empty",
        "sec-fetch-mode": "cors",
        "sec-fetch-site": "same-origin",
        "x-forwarded-for": "127.0.0.1",
        "x-forwarded-host": "localhost:3000",
        "x-forwarded-proto": "http",
        "cookie": "; ".join(cookie),
    }


@dataclass
class Chip:
    id: str
    status: str = "queued"
    summary: dict | None = None
    polls: int = 0


@dataclass
class FrontEnd:
    """One browser tab of one user, talking to the API at `base_url` through the front end's proxies."""

    base_url: str
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # the front end's sessions are UUIDs
    headers: dict[str, str] = field(default_factory=browser_headers)
    state: str = "idle"  # the "multi-turn active" badge
    group_id: str | None = None
    turn_count: int = 0
    chips: list[Chip] = field(default_factory=list)
    calls: Counter = field(default_factory=Counter)  # contract row -> calls replayed

    def ingest(self, role: str, content: str, *, ts: int | None = None, request_id: str | None = None) -> dict:
        body = {
            "sessionId": self.session_id,
            "messageId": base36_id(),
            "role": role,
            "content": content,
            "ts": ts if ts is not None else int(time.time() * 1000),
        }
        headers = {
            **self.headers,
            "content-type": "application/json",
            "accept": "application/json",
            "x-request-id": request_id or str(uuid.uuid4()),
        }
        resp = requests.post(self.base_url + "/messages/ingest", data=json.dumps(body), headers=headers, timeout=15)
        self.calls["B"] += 1
        data = _json(resp)
        self.state = "active" if str(data.get("state") or "").lower() == "active" else "idle"
        if isinstance(data.get("groupId"), str) and data["groupId"]:
            self.group_id = data["groupId"]
        self.turn_count = int(data.get("turnCount") or 0)
        if data.get("enqueued") and isinstance(data.get("groupId"), str) and data["groupId"]:
            if not any(c.id == data["groupId"] for c in self.chips):
                self.chips.insert(0, Chip(data["groupId"]))
        return {"status": resp.status_code, "requestId": resp.headers.get("x-request-id"), **data}

    def poll(self, *, timeout: float = 120) -> list[Chip]:
        """ensureAssessmentPolling: until no chip is pending (or `timeout`); the chips."""
        deadline = time.monotonic() + timeout
        while any(c.status not in ("done", "error") for c in self.chips) and time.monotonic() < deadline:
            resp = requests.get(
                f"{self.base_url}/assessments/{self.session_id}",
                headers={"accept": "application/json", "x-request-id": str(uuid.uuid4())},
                timeout=15,
            )
            self.calls["C"] += 1
            data = _json(resp)
            latest = data.get("latestGroupId") or data.get("latest_group_id")
            for chip in self.chips:
                if chip.status != "done":
                    chip.polls += 1
                if latest and chip.id == latest and chip.status != "done":
                    chip.status, chip.summary = "done", data.get("summary") or chip.summary
            if any(c.status not in ("done", "error") for c in self.chips):
                time.sleep(POLL_INTERVAL_S)
        return self.chips

    def skill_page(self, skill_id: str) -> tuple[dict | None, list[dict]]:
        """(the response, or None for the 404 empty state; the items the page renders)."""
        resp = requests.get(
            f"{self.base_url}/assessments/{self.session_id}",
            headers={"accept": "application/json", "x-request-id": str(uuid.uuid4()), "X-Tracked-Skill-Id": skill_id},
            timeout=15,
        )
        self.calls["D"] += 1
        if resp.status_code == 404:
            return None, []
        assert resp.ok, resp.text  # the page shows "Failed to fetch assessments" otherwise
        raw = resp.json()
        items = raw.get("skillAssessments")
        if not isinstance(items, list):
            items = (raw.get("summary") or {}).get("skillAssessments")
        items = items if isinstance(items, list) else []
        return raw, [i for i in items if str(((i or {}).get("skill") or {}).get("id") or "").strip() == skill_id]

    def run(self) -> dict:
        body = json.dumps({"sessionId": self.session_id}).encode()
        headers = {**self.headers, "content-type": "application/json", "x-request-id": str(uuid.uuid4())}
        resp = requests.post(
            f"{self.base_url}/assessments/run?sessionId={self.session_id}", data=body, headers=headers, timeout=15
        )
        self.calls["E"] += 1
        data = _json(resp)
        if resp.ok and data.get("groupId"):
            self.chips.insert(0, Chip(data["groupId"]))
        return {"ok": resp.ok, **data}

    def tracked_skills(self) -> dict:
        resp = requests.get(f"{self.base_url}/chat/tracked-skills?session_id={self.session_id}", timeout=15)
        self.calls["F"] += 1
        data = _json(resp)
        return data or {"skills": []}


def _json(resp: requests.Response) -> dict:
    """`res.json().catch(() => ({}))`."""
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
